// The gradient check of a backward kernel on the host: the forward kernel gives out and lse,
// `<name>_grad` the gradients of L = sum(out * dout), and central differences of the float64
// reference interpreter the expected ones. Inputs lie in [-1, 1] and the step is 2^-14, so
// x +- h is exact in f32 and the differences are accurate to ~1e-9 relative: an independent
// oracle for the compiler-derived gradients.
#include "compiler/lowering/ASTToAttn.h"
#include "compiler/pipeline/HostRun.h"
#include "compiler/pipeline/OwnedTensor.h"

#include "llvm/Support/Error.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <random>

namespace attnc {

using namespace host;

namespace {

void collectParamLoads(const Expr &e, std::vector<bool> &read) {
  if (e.res == Expr::Res::ParamLoad && e.paramIndex >= 0)
    read[size_t(e.paramIndex)] = true;
  for (const auto &a : e.args)
    collectParamLoads(*a, read);
}

}  // namespace

std::vector<int> gradParams(const Variant &v) {
  std::vector<bool> read(v.params.size(), false);
  for (const ScoreDecl &score : v.scores)
    collectParamLoads(*score.expr, read);
  if (v.outputMap || v.mix)  // the output expression's (and a mix's) params too (attn-grad)
    collectParamLoads(*v.outputExpr, read);
  if (v.decay && v.norm == Norm::Softmax)  // and a forget gate's (decay_grad)
    collectParamLoads(*v.decay, read);
  std::vector<int> out;
  for (size_t p = 0; p < v.params.size(); ++p)
    if (read[p] && isFloat(v.params[p].resolvedDType))
      out.push_back(int(p));
  return out;
}

std::vector<int> gradInputs(const Variant &v) {
  std::vector<int> out;
  for (const KernelArg &a : kernelArgs(v))
    if (a.kind == KernelArg::Kind::Q || a.kind == KernelArg::Kind::K ||
        a.kind == KernelArg::Kind::V)
      out.push_back(a.index);
  return out;
}

bool gradCheck(CPUModule &module, const Variant &v, const RunConfig &config, GradReport &report,
               std::string &error) {
  if (!resolveRunSizes(v, config, report.sizes, error))
    return false;
  const DimSizes &sizes = report.sizes;
  std::mt19937_64 rng(config.seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto fill = [&](OwnedTensor &t) {
    t.forEach([&](const std::vector<int64_t> &idx) { t.view.store(idx, uniform(rng)); });
  };
  std::vector<OwnedTensor> inputs, params;
  for (const TensorDecl &t : v.inputs) {
    inputs.emplace_back(t.resolvedDType, extentsOf(t, sizes));
    fill(inputs.back());
  }
  for (const TensorDecl &p : v.params) {
    params.emplace_back(p.resolvedDType, extentsOf(p, sizes));
    OwnedTensor &o = params.back();
    std::uniform_int_distribution<int64_t> ints(0, intParamBound(v, p, sizes) - 1);
    o.forEach([&](const std::vector<int64_t> &idx) {
      o.view.store(idx, p.resolvedDType == DType::I32 ? double(ints(rng)) : uniform(rng));
    });
  }
  bool softmax = v.norm == Norm::Softmax;
  OwnedTensor out(v.output.resolvedDType, extentsOf(v.output, sizes));
  OwnedTensor lse(DType::F32, {sizes[v.batchDim], sizes[v.qHeadDim], sizes[v.qSeqDim]});
  OwnedTensor dout(v.output.resolvedDType, extentsOf(v.output, sizes));
  fill(dout);

  // Several scores: the other scores' lses (the backward reads every one).
  std::vector<OwnedTensor> moreLse;
  for (size_t n = 1; n < v.scores.size(); ++n)
    moreLse.emplace_back(DType::F32, lse.view.sizes);
  std::vector<MemRefDescriptor> args;
  for (const KernelArg &a : kernelArgs(v)) {
    switch (a.kind) {
    case KernelArg::Kind::Q:
    case KernelArg::Kind::K:
    case KernelArg::Kind::V:
      args.push_back(inputs[size_t(a.index)].descriptor(v.canonicalPerm(v.inputs[size_t(a.index)])));
      break;
    case KernelArg::Kind::Param: args.push_back(params[a.index].descriptor()); break;
    case KernelArg::Kind::Out: args.push_back(out.descriptor(v.canonicalPerm(v.output))); break;
    case KernelArg::Kind::Lse:
      args.push_back(a.index ? moreLse[size_t(a.index - 1)].descriptor() : lse.descriptor());
      break;
    case KernelArg::Kind::State:
      error = "a recurrence's state: no backward";
      return false;
    }
  }
  if (llvm::Error err = module.invoke(v.name, args)) {
    error = "cannot run '" + v.name + "': " + llvm::toString(std::move(err));
    return false;
  }
  // The gradients, NaN-poisoned, in the storage order of what they differentiate.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // dq, dk, dv, the other score inputs' (gradInputs), then one per gradParams entry
  std::vector<int> differentiated = gradInputs(v);
  std::vector<OwnedTensor> grads;
  for (int index : differentiated)
    grads.emplace_back(v.inputs[size_t(index)].resolvedDType,
                       extentsOf(v.inputs[size_t(index)], sizes));
  std::vector<int> withGrad = gradParams(v);
  for (int p : withGrad)
    grads.emplace_back(DType::F32, extentsOf(v.params[p], sizes));
  for (OwnedTensor &g : grads)
    g.forEach([&](const std::vector<int64_t> &idx) { g.view.store(idx, nan); });
  args.push_back(dout.descriptor(v.canonicalPerm(v.output)));
  for (size_t n = 0; n < differentiated.size(); ++n)
    args.push_back(grads[n].descriptor(v.canonicalPerm(v.inputs[size_t(differentiated[n])])));
  size_t firstParam = differentiated.size();
  for (size_t n = 0; n < withGrad.size(); ++n)
    args.push_back(grads[firstParam + n].descriptor());
  if (llvm::Error err = module.invoke(v.name + "_grad", args)) {
    error = "cannot run '" + v.name + "_grad': " + llvm::toString(std::move(err));
    return false;
  }

  // The differences step float params in f32 copies: a 16-bit param (an output gate) cannot
  // hold x0 +- h, and the copies hold the 16-bit values the kernel read exactly.
  for (OwnedTensor &p : params) {
    if (p.view.dtype != DType::F16 && p.view.dtype != DType::BF16)
      continue;
    OwnedTensor wide(DType::F32, p.view.sizes);
    p.forEach([&](const std::vector<int64_t> &idx) { wide.view.store(idx, p.view.load(idx)); });
    p = std::move(wide);
  }

  // L = sum(ref_out * dout) over the canonical [b, h, i, dv] output.
  std::vector<double> doutCanon;
  {
    std::vector<int> perm = v.canonicalPerm(v.output);
    std::vector<int64_t> at(4);
    for (int64_t b = 0; b < sizes[v.batchDim]; ++b)
      for (int64_t h = 0; h < sizes[v.qHeadDim]; ++h)
        for (int64_t i = 0; i < sizes[v.qSeqDim]; ++i)
          for (int64_t e = 0; e < sizes[v.valueDim]; ++e) {
            int64_t c[4] = {b, h, i, e};
            for (int a = 0; a < 4; ++a)
              at[perm[a]] = c[a];
            doutCanon.push_back(dout.view.load(at));
          }
  }
  auto loss = [&]() {
    std::vector<HostTensor> inViews, paramViews;
    for (OwnedTensor &t : inputs)
      inViews.push_back(t.view);
    for (OwnedTensor &t : params)
      paramViews.push_back(t.view);
    std::vector<double> ref, refLse;
    referenceForward(v, sizes, inViews, paramViews, ref, softmax ? &refLse : nullptr);
    double l = 0;
    for (size_t n = 0; n < ref.size(); ++n)
      l += ref[n] * doutCanon[n];
    return l;
  };
  const double h = 1.0 / 16384;
  std::mt19937_64 pick(config.seed ^ 0x9e3779b97f4a7c15ull);
  auto check = [&](OwnedTensor &x, OwnedTensor &g) {
    std::vector<std::vector<int64_t>> at;  // every element; NaN-checked all
    g.forEach([&](const std::vector<int64_t> &idx) {
      at.push_back(idx);
      report.unwritten += std::isnan(g.view.load(idx));
    });
    int64_t limit = config.gradElements;
    if (limit > 0 && int64_t(at.size()) > limit) {  // a random subset, in element order
      std::shuffle(at.begin(), at.end(), pick);
      at.resize(size_t(limit));
      std::sort(at.begin(), at.end());
      ++report.sampled;
    }
    std::vector<double> got, fd;
    for (const std::vector<int64_t> &idx : at) {
      double x0 = x.view.load(idx);
      x.view.store(idx, x0 + h);
      double up = loss();
      x.view.store(idx, x0 - h);
      double down = loss();
      x.view.store(idx, x0);
      fd.push_back((up - down) / (2 * h));
      got.push_back(g.view.load(idx));
    }
    return relativeError(got, fd);
  };
  report.dq = check(inputs[v.q], grads[0]);
  report.dk = check(inputs[v.k], grads[1]);
  report.dv = check(inputs[v.v], grads[2]);
  for (size_t n = 3; n < differentiated.size(); ++n)
    report.dparams.push_back({v.inputs[size_t(differentiated[n])].name,
                              check(inputs[size_t(differentiated[n])], grads[n])});
  for (size_t n = 0; n < withGrad.size(); ++n)
    report.dparams.push_back(
        {v.params[withGrad[n]].name, check(params[withGrad[n]], grads[firstParam + n])});
  return true;
}

}  // namespace attnc
