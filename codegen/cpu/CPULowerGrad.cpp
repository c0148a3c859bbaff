// attn-cpu-lower-grad: attn.attention_grad -> scalar scf loops for the host, the backward by
// recomputation written as plainly as its definition (dialect/AttnOps.td).
#include "codegen/cpu/Emit.h"
#include "codegen/cpu/Passes.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCPULOWERGRAD
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using mlir::attn::cpu::Emit;

namespace {

/// Sets every element of `mem` to 0 (any rank).
void zero(Emit &e, Value mem, SmallVector<Value> idx = {}) {
  auto t = cast<MemRefType>(mem.getType());
  if (int64_t(idx.size()) == t.getRank()) {
    e.store(e.f32(0), mem, idx);
    return;
  }
  e.loop(e.extent(mem, idx.size()), [&](Emit &in, Value x) {
    SmallVector<Value> next = idx;
    next.push_back(x);
    zero(in, mem, next);
  });
}

/// An f32 scratch buffer of `like`'s shape.
Value scratchLike(Emit &e, Value like) {
  auto t = cast<MemRefType>(like.getType());
  SmallVector<Value> dynamic;
  for (int64_t d = 0; d < t.getRank(); ++d)
    if (t.isDynamicDim(d))
      dynamic.push_back(e.dim(like, d));
  auto type = MemRefType::get(t.getShape(), e.b.getF32Type());
  return memref::AllocOp::create(e.b, e.loc, type, dynamic);
}

/// Rounds the 4-d f32 `from` into `to`.
void copyInto(Emit &e, Value from, Value to) {
  e.loop(e.extent(to, 0), [&](Emit &e0, Value a) {
    e0.loop(e0.extent(to, 1), [&](Emit &e1, Value b) {
      e1.loop(e1.extent(to, 2), [&](Emit &e2, Value c) {
        e2.loop(e2.extent(to, 3), [&](Emit &e3, Value d) {
          e3.store(e3.load(from, {a, b, c, d}), to, {a, b, c, d});
        });
      });
    });
  });
}

/// A gradient region (score_grad, output_grad, decay_grad) inlined: its attn.accumulate ops
/// become grad[idx] += value; returns its yield, if any.
SmallVector<Value> inlineGrad(Emit &e, Region &region, ValueRange args) {
  Block &block = region.front();
  IRMapping map;
  map.map(block.getArguments(), args);
  for (Operation &op : block.without_terminator()) {
    if (auto acc = dyn_cast<AccumulateOp>(op)) {
      SmallVector<Value> idx;
      for (Value i : acc.getIndices())
        idx.push_back(map.lookupOrDefault(i));
      Value grad = map.lookupOrDefault(acc.getGrad());
      e.store(e.fadd(e.load(grad, idx), map.lookup(acc.getValue())), grad, idx);
      continue;
    }
    e.b.clone(op, map);
  }
  SmallVector<Value> values;  // decay_grad yields nothing, a score with row norms three
  for (Value y : cast<YieldOp>(block.getTerminator()).getValues())
    values.push_back(map.lookupOrDefault(y));  // a constant may live outside the region
  return values;
}

using Operand = function_ref<Value(Emit &, Value)>;

/// sum_d a(d) c(d) over d < n.
Value dot(Emit &x, Value n, Operand a, Operand c) {
  return x.reduce(n, x.f32(0), [&](Emit &in, Value d, Value acc) {
    return in.fadd(acc, in.fmul(a(in, d), c(in, d)));
  });
}

/// Element c of row (bb, hh, r) of a 4-d tensor, or element c of a vector.
std::function<Value(Emit &, Value)> rowOf(Value mem, Value bb, Value hh, Value r) {
  return [=](Emit &x, Value c) { return x.load(mem, {bb, hh, r, c}); };
}
std::function<Value(Emit &, Value)> vectorOf(Value mem) {
  return [=](Emit &x, Value c) { return x.load(mem, {c}); };
}

/// One attn.attention_grad as loops over (b, h, i) and the row's keys.
class GradLowering {
public:
  GradLowering(AttentionGradOp op, OpBuilder &builder) : op(op), e{builder, op.getLoc()} {}
  void run();

private:
  /// The query row being differentiated: its position, kv head, D and lse.
  struct Row {
    Value b, h, hk, i, rowD, rowLse, empty;
  };
  AttentionGradOp op;
  Emit e;
  Value q, k, v, out, lse, dout, dk, dv, headDim, valueDim, kvLen, qLen, group;
  Value dqRow, cumRow, colSum, rowSum, yRow, dyRow;  // scratch rows (some null)
  NormKind norm = NormKind::softmax;
  bool forget = false, rowNorms = false, mapped = false;

  Value row(Value n) {
    return memref::AllocOp::create(
        e.b, e.loc, MemRefType::get({ShapedType::kDynamic}, e.b.getF32Type()), ValueRange{n})
        .getResult();
  }
  Value asPosition(Emit &x, Value j) {  // key j's position (the mask keeps j <= i)
    return x.minIdx(j, x.add(qLen, x.index(-1)));
  }
  Value weight(Emit &x, const Row &r, Value s);
  void forKeys(Emit &ek, const Row &r, function_ref<void(Emit &, Value, ValueRange, Value)> body);
  void recomputeMapped(Emit &ei, Row &r);
  void keyGrads(Emit &ei, const Row &r);
  void perHead(Emit &eh, Value b, Value h);
};

/// Key j's weight P (0 where masked), with its score s.
Value GradLowering::weight(Emit &x, const Row &r, Value s) {
  Value zeroF = x.f32(0), one = x.f32(1);
  switch (norm) {
  case NormKind::softmax: return x.select(r.empty, zeroF, x.exp(x.fsub(s, r.rowLse)));
  case NormKind::sigmoid:
    return arith::DivFOp::create(x.b, x.loc, one, x.fadd(one, x.exp(x.fsub(zeroF, s))));
  case NormKind::relu2: {
    Value relu = x.fmax(s, zeroF);
    return x.fmul(relu, relu);
  }
  default: return s;  // none (sum has no backward: the verifier rejects it)
  }
}

/// Every allowed key j of the row, with its dot (and row norms) and score.
void GradLowering::forKeys(Emit &ek, const Row &r,
                           function_ref<void(Emit &, Value, ValueRange, Value)> body) {
  ek.loop(kvLen, [&](Emit &ej, Value j) {
    auto visit = [&](Emit &x) {
      SmallVector<Value> dt = {dot(x, headDim, rowOf(q, r.b, r.h, r.i), rowOf(k, r.b, r.hk, j))};
      if (rowNorms)
        dt.append({dot(x, headDim, rowOf(q, r.b, r.h, r.i), rowOf(q, r.b, r.h, r.i)),
                   dot(x, headDim, rowOf(k, r.b, r.hk, j), rowOf(k, r.b, r.hk, j))});
      SmallVector<Value> args = {r.b, r.h, r.i, j};
      args.append(dt.begin(), dt.end());
      Value s = x.inlineRegion(op.getScore(), args);
      if (forget)  // + log gamma(j + 1) + ... + log gamma(i); the mask keeps j <= i
        s = x.fadd(s, x.fsub(x.load(cumRow, {r.i}), x.load(cumRow, {asPosition(x, j)})));
      body(x, j, dt, s);
    };
    if (op.getMask().empty())
      return visit(ej);
    ej.when(ej.inlineRegion(op.getMask(), {r.b, r.h, r.i, j}), visit);
  });
}

/// Through an output expression: y = sum_j P v_j, then z = y r (rmsnorm) or y, dz from
/// output_grad, dy through the norm (dyRow, which takes dout's place), D = dy . y.
void GradLowering::recomputeMapped(Emit &ei, Row &row) {
  zero(ei, yRow);
  forKeys(ei, row, [&](Emit &x, Value j, ValueRange, Value s) {
    Value p = weight(x, row, s);
    x.loop(valueDim, [&](Emit &xe, Value c) {
      xe.store(xe.fadd(xe.load(yRow, {c}), xe.fmul(p, xe.load(v, {row.b, row.hk, j, c}))),
               yRow, {c});
    });
  });
  Value r = ei.f32(1);
  if (auto eps = op.getRmsEpsAttr())
    r = ei.rmsFactor(dot(ei, valueDim, vectorOf(yRow), vectorOf(yRow)), valueDim,
                     eps.getValueAsDouble());
  ei.loop(valueDim, [&](Emit &xe, Value c) {
    Value z = xe.fmul(xe.load(yRow, {c}), r), g = xe.load(dout, {row.b, row.h, row.i, c});
    Value dz = op.getOutputGrad().empty()
                   ? g
                   : inlineGrad(xe, op.getOutputGrad(), {row.b, row.h, row.i, c, z, g})[0];
    xe.store(dz, dyRow, {c});
  });
  if (op.getRmsEps()) {  // dy = r (dz - z mean(dz z)), z = y r
    Value m = arith::DivFOp::create(
        ei.b, ei.loc, ei.fmul(dot(ei, valueDim, vectorOf(dyRow), vectorOf(yRow)), r),
        ei.indexToF32(valueDim));
    ei.loop(valueDim, [&](Emit &xe, Value c) {
      Value z = xe.fmul(xe.load(yRow, {c}), r);
      xe.store(xe.fmul(r, xe.fsub(xe.load(dyRow, {c}), xe.fmul(z, m))), dyRow, {c});
    });
  }
  if (norm == NormKind::softmax)
    row.rowD = dot(ei, valueDim, vectorOf(dyRow), vectorOf(yRow));
}

/// dS of each key of the row, and from it dq (the row's, stored at the end), dk, dv, the
/// params' gradients and the forget gate's column and row sums.
void GradLowering::keyGrads(Emit &ei, const Row &r) {
  // dout's row (dy's through an output expression) at value channel c
  auto gradAt = [&](Emit &x, Value c) {
    return mapped ? x.load(dyRow, {c}) : x.load(dout, {r.b, r.h, r.i, c});
  };
  zero(ei, dqRow);
  forKeys(ei, r, [&](Emit &x, Value j, ValueRange dt, Value s) {
    Value dP = dot(x, valueDim, gradAt, rowOf(v, r.b, r.hk, j));
    Value p = weight(x, r, s), dS;
    switch (norm) {
    case NormKind::softmax: dS = x.fmul(p, x.fsub(dP, r.rowD)); break;
    case NormKind::sigmoid: dS = x.fmul(dP, x.fmul(p, x.fsub(x.f32(1), p))); break;
    case NormKind::relu2: dS = x.fmul(dP, x.fmul(x.f32(2), x.fmax(s, x.f32(0)))); break;
    default: dS = dP;
    }
    if (forget) {
      Value jq = asPosition(x, j);
      x.store(x.fadd(x.load(colSum, {jq}), dS), colSum, {jq});
      x.store(x.fadd(x.load(rowSum, {r.i}), dS), rowSum, {r.i});
    }
    SmallVector<Value> args = {r.b, r.h, r.i, j};
    args.append(dt.begin(), dt.end());
    args.push_back(dS);
    // d(dot) and, with row norms, d(q.q) and d(k.k): dq += d(dot) k + 2 d(q.q) q, dk alike
    SmallVector<Value> d = inlineGrad(x, op.getScoreGrad(), args);
    x.loop(headDim, [&](Emit &xd, Value c) {
      Value qc = xd.load(q, {r.b, r.h, r.i, c}), kc = xd.load(k, {r.b, r.hk, j, c});
      Value toQ = xd.fmul(d[0], kc), toK = xd.fmul(d[0], qc);
      if (rowNorms) {
        toQ = xd.fadd(toQ, xd.fmul(xd.fmul(xd.f32(2), d[1]), qc));
        toK = xd.fadd(toK, xd.fmul(xd.fmul(xd.f32(2), d[2]), kc));
      }
      xd.store(xd.fadd(xd.load(dqRow, {c}), toQ), dqRow, {c});
      xd.store(xd.fadd(xd.load(dk, {r.b, r.hk, j, c}), toK), dk, {r.b, r.hk, j, c});
    });
    x.loop(valueDim, [&](Emit &xe, Value c) {
      xe.store(xe.fadd(xe.load(dv, {r.b, r.hk, j, c}), xe.fmul(p, gradAt(xe, c))), dv,
               {r.b, r.hk, j, c});
    });
  });
  ei.loop(headDim, [&](Emit &xd, Value d) {
    xd.store(xd.load(dqRow, {d}), op.getDq(), {r.b, r.h, r.i, d});
  });
}

void GradLowering::perHead(Emit &eh, Value b, Value h) {
  Value hk = arith::DivUIOp::create(eh.b, eh.loc, h, group);
  if (forget) {
    zero(eh, colSum);
    zero(eh, rowSum);
    eh.reduce(qLen, eh.f32(0), [&](Emit &x, Value t, Value sum) {
      Value next =
          x.fadd(sum, buildLogDecay(x.b, x.loc, x.inlineRegion(op.getDecay(), {b, h, t})));
      x.store(next, cumRow, {t});
      return next;
    });
  }
  eh.loop(qLen, [&](Emit &ei, Value i) {
    Row r{b, h, hk, i, Value(), Value(), Value()};
    // D = dout . out (through an output expression: dy . y, in recomputeMapped)
    r.rowD = norm == NormKind::softmax && !mapped
                 ? dot(ei, valueDim, rowOf(dout, b, h, i), rowOf(out, b, h, i))
                 : ei.f32(0);
    r.rowLse = lse ? ei.load(lse, {b, h, i}) : Value();
    r.empty = lse ? ei.feq(r.rowLse, ei.f32(-std::numeric_limits<float>::infinity())) : Value();
    if (mapped)
      recomputeMapped(ei, r);
    keyGrads(ei, r);
  });
  // log gamma(t) is in the scores of i >= t > j: its gradient is
  // sum_{j < t} colSum[j] - sum_{i < t} rowSum[i] (the causal mask keeps dS(i, j) = 0 for
  // j > i), a running sum over t.
  if (forget)
    eh.reduce(qLen, eh.f32(0), [&](Emit &x, Value t, Value before) {
      inlineGrad(x, op.getDecayGrad(), {b, h, t, before});
      return x.fadd(before, x.fsub(x.load(colSum, {t}), x.load(rowSum, {t})));
    });
}

void GradLowering::run() {
  q = op.getQ(), k = op.getK(), v = op.getV(), out = op.getOut(), lse = op.getLse(),
  dout = op.getDout();
  norm = op.getNorm();
  llvm::SetVector<Value> paramGrads;
  op->walk([&](AccumulateOp acc) { paramGrads.insert(acc.getGrad()); });
  for (Value g : paramGrads)
    zero(e, g);
  dk = scratchLike(e, op.getDk()), dv = scratchLike(e, op.getDv());
  zero(e, dk);
  zero(e, dv);
  headDim = e.extent(q, 3), valueDim = e.extent(v, 3), kvLen = e.extent(k, 2);
  dqRow = row(headDim);
  // A forget gate: per (b, h) the cumulative log decays cum[t], and the column and row sums of
  // dS (colSum[j], rowSum[i]) whose prefix sums give each log decay's gradient.
  forget = !op.getDecay().empty();
  rowNorms = op.getScore().front().getNumArguments() == 7;  // dot(q, q), dot(k, k)
  qLen = e.extent(q, 2);
  if (forget)
    cumRow = row(qLen), colSum = row(qLen), rowSum = row(qLen);
  // Through an output expression: the recomputed row y and the gradient dy that takes dout's
  // place (see attn.attention_grad).
  mapped = !op.getOutputGrad().empty() || op.getRmsEps();
  if (mapped)
    yRow = row(valueDim), dyRow = row(valueDim);
  group = e.index(int64_t(op.getGroup()));
  e.loop(e.extent(q, 0), [&](Emit &eb, Value b) {
    eb.loop(eb.extent(q, 1), [&](Emit &eh, Value h) { perHead(eh, b, h); });
  });
  copyInto(e, dk, op.getDk());
  copyInto(e, dv, op.getDv());
  for (Value scratch : {dqRow, dk, dv, yRow, dyRow, cumRow, colSum, rowSum})
    if (scratch)
      memref::DeallocOp::create(e.b, e.loc, scratch);
  op.erase();
}

struct AttnCPULowerGradPass : mlir::attn::impl::AttnCPULowerGradBase<AttnCPULowerGradPass> {
  void runOnOperation() override {
    SmallVector<AttentionGradOp> ops;
    getOperation().walk([&](AttentionGradOp op) { ops.push_back(op); });
    for (AttentionGradOp op : ops) {
      OpBuilder builder(op);
      GradLowering(op, builder).run();
    }
  }
};

} // namespace
