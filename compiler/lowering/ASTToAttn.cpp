// AST -> attn dialect. Integers of the spec are `index` values, floats f32, booleans i1; the
// score and mask regions receive (b, h, i, j[, dot]) and read params with memref.load.
#include "compiler/lowering/ASTToAttn.h"

#include "dialect/AttnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <map>

using namespace mlir;

namespace attnc {

/// `name`, or `name_`, `name__`, ... : the first that no tensor of `v` declares (the kernel's
/// lse arguments, which a param may be called too; tests/python/ref_dump.cpp names alike).
static std::string undeclared(const Variant &v, std::string name) {
  auto taken = [&](const std::string &n) {
    if (n == v.output.name || (v.state && n == v.state->name))
      return true;
    for (const std::vector<TensorDecl> *list : {&v.inputs, &v.params})
      for (const TensorDecl &t : *list)
        if (t.name == n)
          return true;
    return false;
  };
  while (taken(name))
    name += "_";
  return name;
}

std::vector<KernelArg> kernelArgs(const Variant &v) {
  std::vector<KernelArg> args = {{KernelArg::Kind::Q, v.inputs[v.q].name, v.q},
                                 {KernelArg::Kind::K, v.inputs[v.k].name, v.k},
                                 {KernelArg::Kind::V, v.inputs[v.v].name, v.v}};
  for (size_t p = 0; p < v.params.size(); ++p)
    args.push_back({KernelArg::Kind::Param, v.params[p].name, int(p)});
  args.push_back({KernelArg::Kind::Out, v.output.name});
  if (v.norm == Norm::Softmax)
    args.push_back({KernelArg::Kind::Lse, undeclared(v, "lse"), 0});
  if (v.state)
    args.push_back({KernelArg::Kind::State, v.state->name});
  // Several scores: the other scores' queries and keys (each input once), then their lses.
  std::vector<int> listed = {v.q, v.k, v.v};
  for (size_t n = 1; n < v.scores.size(); ++n)
    for (auto [kind, input] : {std::pair{KernelArg::Kind::Q, v.scoreQ[n]},
                               std::pair{KernelArg::Kind::K, v.scoreK[n]}})
      if (std::find(listed.begin(), listed.end(), input) == listed.end()) {
        listed.push_back(input);
        args.push_back({kind, v.inputs[size_t(input)].name, input});
      }
  if (v.norm == Norm::Softmax)
    for (size_t n = 1; n < v.scores.size(); ++n)
      args.push_back({KernelArg::Kind::Lse, undeclared(v, "lse_" + v.scores[n].name), int(n)});
  return args;
}

namespace {

Type elementType(OpBuilder &b, DType t) {
  switch (t) {
  case DType::F32: return b.getF32Type();
  case DType::F16: return b.getF16Type();
  case DType::BF16: return b.getBF16Type();
  case DType::I32: return b.getI32Type();
  case DType::I8: return b.getI8Type();
  case DType::F8E4M3: return b.getType<Float8E4M3FNType>();
  case DType::I4: return VectorType::get({2}, b.getIntegerType(4));  // the byte of two values
  }
  return {};
}

/// Static extent of a dim (see attnc::staticExtent) in MLIR's terms: kDynamic if unknown.
int64_t shapeExtent(const Variant &v, int d) {
  int64_t e = staticExtent(v, d);
  return e < 0 ? ShapedType::kDynamic : e;
}

/// A strided memref of `dtype`; a packed dtype (i4) counts its last axis in bytes.
MemRefType stridedMemRef(ArrayRef<int64_t> extents, OpBuilder &b, DType dtype) {
  Type elt = elementType(b, dtype);
  SmallVector<int64_t> shape(extents);
  if (!shape.empty() && !ShapedType::isDynamic(shape.back()))
    shape.back() /= dtypePacking(dtype);
  SmallVector<int64_t> strides(shape.size(), ShapedType::kDynamic);
  auto layout = StridedLayoutAttr::get(elt.getContext(), ShapedType::kDynamic, strides);
  return MemRefType::get(shape, elt, layout);
}

class Lowering {
public:
  Lowering(MLIRContext &ctx, const SpecFile &file, Diagnostic &diag)
      : b(&ctx), file(file), diag(diag) {}

  OwningOpRef<ModuleOp> run() {
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc({1, 1}));
    b.setInsertionPointToEnd(module->getBody());
    for (const Variant &var : file.variants)
      if (!lowerVariant(var))
        return nullptr;
    return module;
  }

private:
  OpBuilder b;
  const SpecFile &file;
  Diagnostic &diag;
  const Variant *v = nullptr;
  // Function arguments by role, and the region's block arguments while building one.
  Value q, k, vv, out, lse;
  std::vector<Value> params;
  Value argB, argH, argI, argJ, argDot, argQQ, argKK;
  Value argX;  // a feature map's element
  Value argSq;  // a projected feature map's sum of squares (its projection is argX)
  Value argD;  // a gate's head channel
  Value argE;  // a skip term's (an output map's) value channel
  Value argY;  // an output map's attend result
  SmallVector<Value> argYs;  // a mix's rows: attend(s_n, v) of each score n
  bool failed = false;

  Location loc(SourceLoc l) {
    return FileLineColLoc::get(b.getContext(), file.path, l.line, l.col);
  }

  Value fail(const Expr &e, const std::string &message, const std::string &hint = {}) {
    if (!failed) {
      diag = Diagnostic{file.path, e.loc, e.length, message, hint};
      failed = true;
    }
    return {};
  }

  /// Memref type of q/k/v/o in canonical order: static extents where the spec fixes them.
  MemRefType canonicalType(const TensorDecl &t, int seqDim, int headDim, int lastDim) {
    SmallVector<int64_t> shape;
    for (int d : {v->batchDim, headDim, seqDim, lastDim})
      shape.push_back(shapeExtent(*v, d));
    return stridedMemRef(shape, b, t.resolvedDType);
  }

  bool lowerVariant(const Variant &var) {
    v = &var;
    failed = false;
    params.clear();
    const TensorDecl &tq = var.inputs[var.q], &tk = var.inputs[var.k], &tv = var.inputs[var.v];
    SmallVector<Type> argTypes = {
        canonicalType(tq, var.qSeqDim, var.qkGroupDim >= 0 ? var.qkGroupDim : var.qHeadDim,
                      var.headDim),
        canonicalType(tk, var.kvSeqDim, var.qkGroupDim >= 0 ? var.qkGroupDim : var.kvHeadDim,
                      var.headDim),
        canonicalType(tv, var.kvSeqDim, var.kvHeadDim, var.valueDim)};
    if (var.paged) {  // page pools [pages, hk, P, d|dv]
      int64_t pageSize = var.paged->pageSize;
      for (auto [index, last] : {std::pair{1, var.headDim}, std::pair{2, var.valueDim}})
        argTypes[index] = stridedMemRef({ShapedType::kDynamic, shapeExtent(var, var.kvHeadDim),
                                         pageSize, shapeExtent(var, last)},
                                        b, var.inputs[index == 1 ? var.k : var.v].resolvedDType);
    }
    for (const TensorDecl &p : var.params) {
      SmallVector<int64_t> shape;
      for (int d : p.dims)
        shape.push_back(shapeExtent(var, d));
      argTypes.push_back(stridedMemRef(shape, b, p.resolvedDType));
    }
    argTypes.push_back(canonicalType(var.output, var.qSeqDim, var.qHeadDim, var.valueDim));
    bool softmax = var.norm == Norm::Softmax;
    if (softmax) {
      SmallVector<int64_t> shape;
      for (int d : {var.batchDim, var.qHeadDim, var.qSeqDim})
        shape.push_back(shapeExtent(var, d));
      argTypes.push_back(stridedMemRef(shape, b, DType::F32));
    }
    if (var.state) {  // canonical [b, h, d, dv]
      SmallVector<int64_t> shape;
      for (int d : {var.batchDim, var.qHeadDim, var.headDim, var.valueDim})
        shape.push_back(shapeExtent(var, d));
      argTypes.push_back(stridedMemRef(shape, b, DType::F32));
    }
    // Several scores: the arguments after these (kernelArgs), typed like q, k and lse.
    std::vector<KernelArg> kargs = kernelArgs(var);
    size_t firstMore = argTypes.size();
    for (size_t a = firstMore; a < kargs.size(); ++a) {
      const KernelArg &x = kargs[a];
      if (x.kind == KernelArg::Kind::Lse)
        argTypes.push_back(argTypes[4 + var.params.size()]);
      else if (x.kind == KernelArg::Kind::Q)
        argTypes.push_back(canonicalType(var.inputs[size_t(x.index)], var.qSeqDim,
                                         var.qHeadDim, var.headDim));
      else
        argTypes.push_back(canonicalType(var.inputs[size_t(x.index)], var.kvSeqDim,
                                         var.kvHeadDim, var.headDim));
    }

    OpBuilder::InsertionGuard guard(b);
    auto func = func::FuncOp::create(b, loc(var.loc), var.name, b.getFunctionType(argTypes, {}));
    func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    if (var.positionOffsets >= 0)  // ring blocks: attn-position-offsets reads these marks
      for (unsigned side = 0; side < 2; ++side)
        func.setArgAttr(3 + unsigned(var.positionOffsets) + side, "attn.position_offset",
                        b.getStringAttr(side ? "k" : "q"));
    Block *entry = func.addEntryBlock();
    b.setInsertionPointToStart(entry);
    auto args = entry->getArguments();
    q = args[0], k = args[1], vv = args[2];
    for (size_t p = 0; p < var.params.size(); ++p)
      params.push_back(args[3 + p]);
    out = args[3 + var.params.size()];
    lse = softmax ? args[4 + var.params.size()] : Value();
    Value state = var.state ? args[firstMore - 1] : Value();
    // Several scores: each score's q and k (an input read by several scores is one argument).
    std::map<int, Value> inputArg = {{var.q, q}, {var.k, k}, {var.v, vv}};
    SmallVector<Value> moreQ, moreK, moreLse;
    for (size_t a = firstMore; a < kargs.size(); ++a)
      if (kargs[a].kind == KernelArg::Kind::Lse)
        moreLse.push_back(args[a]);
      else
        inputArg[kargs[a].index] = args[a];
    for (size_t n = 1; n < var.scores.size(); ++n) {
      moreQ.push_back(inputArg.at(var.scoreQ[n]));
      moreK.push_back(inputArg.at(var.scoreK[n]));
    }

    auto norm = attn::NormKind::softmax;
    switch (var.norm) {
    case Norm::Softmax: norm = attn::NormKind::softmax; break;
    case Norm::None: norm = attn::NormKind::none; break;
    case Norm::Sigmoid: norm = attn::NormKind::sigmoid; break;
    case Norm::Relu2: norm = attn::NormKind::relu2; break;
    case Norm::Sum: norm = attn::NormKind::sum; break;
    }
    const ScoreDecl &score = var.scores.front();
    Value table = var.paged ? params[var.paged->tableParam] : Value();
    // Quantised k / v: the scale param and, per scale axis, the canonical key axis it reads.
    auto scaleOf = [&](const TensorDecl &t, SmallVector<int64_t> &axes) -> Value {
      if (t.scaleParam < 0)
        return {};
      for (int pos : t.scaleAxes) {
        int d = t.dims[size_t(pos)];
        axes.push_back(d == var.batchDim ? 0 : d == var.kvHeadDim ? 1 : d == var.kvSeqDim ? 2 : 3);
      }
      return params[size_t(t.scaleParam)];
    };
    SmallVector<int64_t> kAxes, vAxes;
    Value kScale = scaleOf(tk, kAxes), vScale = scaleOf(tv, vAxes);
    auto op = attn::AttentionOp::create(
        b, loc(score.loc), q, k, vv, table, kScale, vScale, out, lse, state,
        var.featureDim >= 0 ? params[size_t(var.projParam)] : Value(), moreQ, moreK, moreLse,
        static_cast<uint64_t>(var.group), norm, var.paged ? var.paged->pageSize : 0,
        b.getDenseI64ArrayAttr(kAxes), b.getDenseI64ArrayAttr(vAxes), tk.scaleGroup,
        tv.scaleGroup,
        var.unifiedMax ? b.getF32FloatAttr(float(*var.unifiedMax)) : FloatAttr(), var.qkGroup,
        var.rmsEps ? b.getF32FloatAttr(float(*var.rmsEps)) : FloatAttr(),
        unsigned(moreQ.size()));

    Type idx = b.getIndexType();
    SmallVector<Type> scoreArgs = {idx, idx, idx, idx, b.getF32Type()};
    if (var.rowNormQ || var.rowNormK)  // (..., dot, dot(q, q), dot(k, k))
      scoreArgs.append(2, b.getF32Type());
    buildRegion(op.getScore(), scoreArgs, *score.expr, b.getF32Type());
    if (var.mask)
      buildRegion(op.getMask(), {idx, idx, idx, idx}, *var.mask, b.getI1Type());
    // A projected map: (x . w[m], x . x) -> f32, with the projection w [m, d] an operand.
    SmallVector<Type> featureArgs(var.featureDim >= 0 ? 2 : 1, b.getF32Type());
    if (var.featureQ)
      buildRegion(op.getFeatureQ(), featureArgs, *var.featureQ, b.getF32Type());
    if (var.featureK)
      buildRegion(op.getFeatureK(), featureArgs, *var.featureK, b.getF32Type());
    if (var.decay)
      buildRegion(op.getDecay(), {idx, idx, idx}, *var.decay, b.getF32Type());
    if (var.gate)
      buildRegion(op.getGate(), {idx, idx, idx, idx}, *var.gate, b.getF32Type(), true);
    if (var.bonus)
      buildRegion(op.getBonus(), {idx, idx, idx, idx}, *var.bonus, b.getF32Type(), true);
    if (var.skip)
      buildElementRegion(op.getSkip(), *var.skip, /*outputMap=*/false, var.skipNegate);
    if (var.outputMap)
      buildElementRegion(op.getOutput(), *var.outputExpr, /*outputMap=*/true);
    if (var.mix) {
      SmallVector<Type> types = {idx, idx, idx, idx};
      types.append(var.scores.size(), b.getF32Type());
      for (size_t n = 1; n < var.scores.size(); ++n) {
        Region &region = op.getMoreScores()[n - 1];
        buildRegion(region, {idx, idx, idx, idx, b.getF32Type()}, *var.scores[n].expr,
                    b.getF32Type());
      }
      buildMix(op.getMix(), *var.mix, var.scores.size());
    }
    func::ReturnOp::create(b, loc(var.loc));
    return !failed;
  }

  /// `channel`: a gate or bonus region, (b, h, i, d).
  void buildRegion(Region &region, ArrayRef<Type> types, const Expr &e, Type result,
                   bool channel = false) {
    OpBuilder::InsertionGuard guard(b);
    SmallVector<Location> locs(types.size(), loc(e.loc));
    Block *block = b.createBlock(&region, {}, types, locs);
    // Score and mask: (b, h, i, j[, dot]); a decay: (b, h, i); a feature map: (x), or
    // (x . w[m], x . x) projected; the other regions' arguments are indices.
    auto arg = [&](size_t n) { return n < types.size() ? block->getArgument(n) : Value(); };
    bool feature = !types.front().isIndex();
    argX = feature ? arg(0) : Value();
    argSq = feature ? arg(1) : Value();
    argB = feature ? Value() : arg(0);
    argH = feature ? Value() : arg(1), argI = arg(2), argJ = arg(3);
    argDot = arg(4);
    argQQ = arg(5), argKK = arg(6);  // a score's row norms, if it reads them
    argD = channel ? argJ : Value();
    if (channel)
      argJ = Value();
    Value value = emit(e);
    if (!value)
      value = arith::ConstantOp::create(b, loc(e.loc), b.getZeroAttr(result));
    else if (result.isF32())
      value = toFloat(value, e);
    attn::YieldOp::create(b, loc(e.loc), value);
  }

  /// A per-element region of the output, (b, h, i, e, x): the skip term (x: v at the query
  /// position; negated for `attend(...) - term`), or the output map (x: attend's element).
  void buildElementRegion(Region &region, const Expr &e, bool outputMap, bool negate = false) {
    OpBuilder::InsertionGuard guard(b);
    Type idx = b.getIndexType();
    SmallVector<Location> locs(5, loc(e.loc));
    Block *block = b.createBlock(&region, {}, {idx, idx, idx, idx, b.getF32Type()}, locs);
    argB = block->getArgument(0), argH = block->getArgument(1), argI = block->getArgument(2);
    argE = block->getArgument(3);
    argJ = argDot = argQQ = argKK = argD = argX = argY = Value();
    (outputMap ? argY : argX) = block->getArgument(4);
    Value value = toFloat(emit(e), e);
    if (!value)
      value = arith::ConstantOp::create(b, loc(e.loc), b.getF32FloatAttr(0.0f));
    else if (negate)
      value = arith::NegFOp::create(b, loc(e.loc), value);
    attn::YieldOp::create(b, loc(e.loc), value);
    argE = argX = argY = Value();
  }

  /// The mix of several scores' rows, (b, h, i, e, y_0, ..., y_N) -> f32.
  void buildMix(Region &region, const Expr &e, size_t scores) {
    OpBuilder::InsertionGuard guard(b);
    Type idx = b.getIndexType();
    SmallVector<Type> types = {idx, idx, idx, idx};
    types.append(scores, b.getF32Type());
    SmallVector<Location> locs(types.size(), loc(e.loc));
    Block *block = b.createBlock(&region, {}, types, locs);
    argB = block->getArgument(0), argH = block->getArgument(1), argI = block->getArgument(2);
    argE = block->getArgument(3);
    argJ = argDot = argQQ = argKK = argD = argX = argY = Value();
    argYs.clear();
    for (size_t n = 0; n < scores; ++n)
      argYs.push_back(block->getArgument(unsigned(4 + n)));
    Value value = toFloat(emit(e), e);
    if (!value)
      value = arith::ConstantOp::create(b, loc(e.loc), b.getF32FloatAttr(0.0f));
    attn::YieldOp::create(b, loc(e.loc), value);
    argE = Value();
    argYs.clear();
  }

  Value toFloat(Value x, const Expr &e) {
    if (!x || x.getType().isF32())
      return x;
    Location l = loc(e.loc);
    Value i64 = arith::IndexCastOp::create(b, l, b.getI64Type(), x);
    return arith::SIToFPOp::create(b, l, b.getF32Type(), i64);
  }

  /// The value of an iteration dim inside a region: b, h, i, j, or the kv head h / group.
  Value iterIndex(const Expr &e) {
    switch (v->dims[e.dimIndex].role) {
    case DimRole::Batch: return argB;
    case DimRole::QHead: return argH;
    case DimRole::QSeq: return argI;
    case DimRole::KVSeq: return argJ;
    case DimRole::HeadDim:  // a gate's channel
      if (argD)
        return argD;
      return fail(e, "'" + e.name + "' is not an index of the score");
    case DimRole::ValueDim:  // a skip term's channel
      if (argE)
        return argE;
      return fail(e, "'" + e.name + "' is not an index of the score");
    case DimRole::KVHead:
    case DimRole::QKHead: {
      int64_t group = v->dims[e.dimIndex].role == DimRole::KVHead ? v->group : v->qkGroup;
      Value g = arith::ConstantIndexOp::create(b, loc(e.loc), group);
      return arith::DivUIOp::create(b, loc(e.loc), argH, g);
    }
    default: return fail(e, "'" + e.name + "' is not an index of the score");
    }
  }

  /// The runtime extent of a dim: read off the first canonical tensor that has it.
  Value dimSize(const Expr &e) {
    Location l = loc(e.loc);
    int d = e.dimIndex;
    int64_t fixed = shapeExtent(*v, d);
    if (!ShapedType::isDynamic(fixed))
      return arith::ConstantIndexOp::create(b, l, fixed);
    const std::pair<Value, std::array<int, 4>> tensors[] = {
        {q, {v->batchDim, v->qHeadDim, v->qSeqDim, v->headDim}},
        {k, {v->batchDim, v->kvHeadDim, v->kvSeqDim, v->headDim}},
        {vv, {v->batchDim, v->kvHeadDim, v->kvSeqDim, v->valueDim}}};
    if (v->paged && d == v->kvSeqDim)  // pages per sequence x page size
      return attn::buildKVLength(b, l, k, params[v->paged->tableParam], v->paged->pageSize);
    for (const auto &[tensor, axes] : tensors)
      for (int a = 0; a < 4; ++a)
        if (axes[a] == d && !(v->paged && tensor != q && a == 0))  // pools: axis 0 = pages
          return memref::DimOp::create(b, l, tensor, a);
    return fail(e, "the size of '" + v->dims[d].name + "' is unknown: no input has this dim",
                "use the dim in q, k or v, or give it a static size (" + v->dims[d].name +
                    " = 64)");
  }

  Value emit(const Expr &e) {
    if (failed)
      return {};
    Location l = loc(e.loc);
    switch (e.kind) {
    case Expr::Kind::IntLit: return arith::ConstantIndexOp::create(b, l, e.intValue);
    case Expr::Kind::FloatLit:
      return arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(e.floatValue)));
    case Expr::Kind::BoolLit: return arith::ConstantIntOp::create(b, l, e.intValue != 0, 1);
    case Expr::Kind::Ident:
      if (e.res == Expr::Res::FeatureArg)
        return argX;
      return e.res == Expr::Res::IterIndex ? iterIndex(e) : dimSize(e);
    case Expr::Kind::Index:
      return e.res == Expr::Res::ValueAt ? argX : emitParamLoad(e);
    case Expr::Kind::Call:
      if (e.res == Expr::Res::FeatureProj || e.res == Expr::Res::FeatureSq)
        return e.res == Expr::Res::FeatureProj ? argX : argSq;
      return emitCall(e);
    case Expr::Kind::Unary: return emitUnary(e);
    case Expr::Kind::Binary: return emitBinary(e);
    }
    return fail(e, "cannot lower this expression");
  }

  Value emitParamLoad(const Expr &e) {
    Location l = loc(e.loc);
    SmallVector<Value> indices;
    for (auto [axis, a] : llvm::enumerate(e.args)) {
      Value at = emit(*a);
      if (at && a->clamp)  // a computed index: clamped into [0, extent - 1]
        at = clampIndex(l, at, params[e.paramIndex], int64_t(axis));
      indices.push_back(at);
    }
    if (failed)
      return {};
    Value x = memref::LoadOp::create(b, l, params[e.paramIndex], indices);
    if (x.getType().isInteger(32))
      return arith::IndexCastOp::create(b, l, b.getIndexType(), x);
    return x.getType().isF32() ? x : arith::ExtFOp::create(b, l, b.getF32Type(), x).getResult();
  }

  /// min(max(x, 0), extent - 1) along `axis` of `param` (the runtime refuses an empty axis).
  Value clampIndex(Location l, Value x, Value param, int64_t axis) {
    auto type = cast<MemRefType>(param.getType());
    Value extent = type.isDynamicDim(axis)
                       ? memref::DimOp::create(b, l, param, axis).getResult()
                       : arith::ConstantIndexOp::create(b, l, type.getDimSize(axis)).getResult();
    Value last = arith::SubIOp::create(b, l, extent, arith::ConstantIndexOp::create(b, l, 1));
    Value low = arith::MaxSIOp::create(b, l, x, arith::ConstantIndexOp::create(b, l, 0));
    return arith::MinSIOp::create(b, l, low, last);
  }

  Value emitUnary(const Expr &e) {
    Value x = emit(*e.args[0]);
    if (!x)
      return {};
    Location l = loc(e.loc);
    if (e.op == "!")
      return arith::XOrIOp::create(b, l, x, arith::ConstantIntOp::create(b, l, 1, 1));
    if (e.type == ValueType::Int)
      return arith::SubIOp::create(b, l, arith::ConstantIndexOp::create(b, l, 0), x);
    return arith::NegFOp::create(b, l, toFloat(x, e));
  }

  /// Integer x / y and x % y give 0 when y is 0 (the spec's rule), never a trap.
  /// x / y and x % y as the language defines them (and both references compute them): C's
  /// truncation, x / 0 = x % 0 = 0, and y = -1 wraps (x / -1 = 0 - x, x % -1 = 0) so that
  /// INT64_MIN / -1 neither traps (SIGFPE on x86) nor is undefined.
  Value guardedIntDiv(Location l, Value x, Value y, bool remainder) {
    Value zero = arith::ConstantIndexOp::create(b, l, 0);
    Value one = arith::ConstantIndexOp::create(b, l, 1);
    Value minusOne = arith::ConstantIndexOp::create(b, l, -1);
    Value isZero = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, y, zero);
    Value isMinusOne = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, y, minusOne);
    Value special = arith::OrIOp::create(b, l, isZero, isMinusOne);
    Value safe = arith::SelectOp::create(b, l, special, one, y);
    Value r = remainder ? arith::RemSIOp::create(b, l, x, safe).getResult()
                        : arith::DivSIOp::create(b, l, x, safe).getResult();
    // y = 1 in the division gave x: -1 negates it (wrapping); the remainder by 1 is already 0.
    if (!remainder)
      r = arith::SelectOp::create(b, l, isMinusOne, arith::SubIOp::create(b, l, zero, r), r);
    return arith::SelectOp::create(b, l, isZero, zero, r);
  }

  Value emitBinary(const Expr &e) {
    Value x = emit(*e.args[0]), y = emit(*e.args[1]);
    if (!x || !y)
      return {};
    Location l = loc(e.loc);
    const std::string &op = e.op;
    if (op == "&&") return arith::AndIOp::create(b, l, x, y);
    if (op == "||") return arith::OrIOp::create(b, l, x, y);
    bool ints = x.getType().isIndex() && y.getType().isIndex();
    static const std::pair<const char *, std::pair<arith::CmpIPredicate, arith::CmpFPredicate>>
        cmps[] = {{"<", {arith::CmpIPredicate::slt, arith::CmpFPredicate::OLT}},
                  {"<=", {arith::CmpIPredicate::sle, arith::CmpFPredicate::OLE}},
                  {">", {arith::CmpIPredicate::sgt, arith::CmpFPredicate::OGT}},
                  {">=", {arith::CmpIPredicate::sge, arith::CmpFPredicate::OGE}},
                  {"==", {arith::CmpIPredicate::eq, arith::CmpFPredicate::OEQ}},
                  {"!=", {arith::CmpIPredicate::ne, arith::CmpFPredicate::UNE}}};
    for (const auto &[name, preds] : cmps) {
      if (op != name)
        continue;
      if (ints)
        return arith::CmpIOp::create(b, l, preds.first, x, y);
      return arith::CmpFOp::create(b, l, preds.second, toFloat(x, e), toFloat(y, e));
    }
    if (ints) {
      if (op == "+") return arith::AddIOp::create(b, l, x, y);
      if (op == "-") return arith::SubIOp::create(b, l, x, y);
      if (op == "*") return arith::MulIOp::create(b, l, x, y);
      if (op == "/" || op == "%") return guardedIntDiv(l, x, y, op == "%");
    } else {
      x = toFloat(x, e), y = toFloat(y, e);
      if (op == "+") return arith::AddFOp::create(b, l, x, y);
      if (op == "-") return arith::SubFOp::create(b, l, x, y);
      if (op == "*") return arith::MulFOp::create(b, l, x, y);
      if (op == "/") return arith::DivFOp::create(b, l, x, y);
      if (op == "%") return arith::RemFOp::create(b, l, x, y);
    }
    return fail(e, "operator '" + op + "' cannot be lowered");
  }

  Value emitCall(const Expr &e) {
    Location l = loc(e.loc);
    switch (e.builtin) {
    case Builtin::Dot: {
      Value dot = e.rowNorm == 1 ? argQQ : e.rowNorm == 2 ? argKK : argDot;
      return dot ? dot : fail(e, "dot(...) is only allowed in the score");
    }
    case Builtin::Attend:
      if (e.attendScore >= 0 && size_t(e.attendScore) < argYs.size())
        return argYs[size_t(e.attendScore)];  // a mix's row of score n
      return argY ? argY : fail(e, "attend(...) is only allowed in the output expression");
    case Builtin::Size: return dimSize(e);
    default: break;
    }
    SmallVector<Value> a;
    for (const ExprPtr &arg : e.args)
      a.push_back(emit(*arg));
    if (failed)
      return {};
    auto f = [&](Value x) { return toFloat(x, e); };
    bool ints = e.type == ValueType::Int;
    switch (e.builtin) {
    case Builtin::Exp: return math::ExpOp::create(b, l, f(a[0]));
    case Builtin::Log: return math::LogOp::create(b, l, f(a[0]));
    case Builtin::Tanh: return math::TanhOp::create(b, l, f(a[0]));
    case Builtin::Sqrt: return math::SqrtOp::create(b, l, f(a[0]));
    case Builtin::Rsqrt: return math::RsqrtOp::create(b, l, f(a[0]));
    case Builtin::Sigmoid: {
      Value one = arith::ConstantOp::create(b, l, b.getF32FloatAttr(1.0f));
      Value ex = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, f(a[0])));
      return arith::DivFOp::create(b, l, one, arith::AddFOp::create(b, l, one, ex));
    }
    case Builtin::Floor: {  // the int at or below x; NaN -> 0, saturating at +-2^30
      if (a[0].getType().isIndex())  // floor of an int is itself
        return a[0];
      Value x = math::FloorOp::create(b, l, f(a[0]));
      Value limit = arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(kFloorLimit)));
      Value nlimit = arith::ConstantOp::create(b, l, b.getF32FloatAttr(-float(kFloorLimit)));
      Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.0f));
      Value isNan = arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO, x, x);
      x = arith::MinNumFOp::create(b, l, arith::MaxNumFOp::create(b, l, x, nlimit), limit);
      x = arith::SelectOp::create(b, l, isNan, zero, x);
      Value i = arith::FPToSIOp::create(b, l, b.getI64Type(), x);
      return arith::IndexCastOp::create(b, l, b.getIndexType(), i);
    }
    case Builtin::Relu:
      return arith::MaximumFOp::create(
          b, l, f(a[0]), arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.0f)));
    case Builtin::Abs:
      if (ints)
        return arith::MaxSIOp::create(
            b, l, a[0], arith::SubIOp::create(b, l, arith::ConstantIndexOp::create(b, l, 0), a[0]));
      return math::AbsFOp::create(b, l, f(a[0]));
    case Builtin::Min:
      return ints ? arith::MinSIOp::create(b, l, a[0], a[1]).getResult()
                  : arith::MinimumFOp::create(b, l, f(a[0]), f(a[1])).getResult();
    case Builtin::Max:
      return ints ? arith::MaxSIOp::create(b, l, a[0], a[1]).getResult()
                  : arith::MaximumFOp::create(b, l, f(a[0]), f(a[1])).getResult();
    case Builtin::Select:
      if (e.type == ValueType::Float)
        return arith::SelectOp::create(b, l, a[0], f(a[1]), f(a[2]));
      return arith::SelectOp::create(b, l, a[0], a[1], a[2]);
    default: return fail(e, "'" + e.name + "' cannot be used here");
    }
  }
};

} // namespace

OwningOpRef<ModuleOp> lowerToAttn(MLIRContext &ctx, const SpecFile &file, Diagnostic &diag) {
  ctx.loadDialect<attn::AttnDialect, func::FuncDialect, arith::ArithDialect, math::MathDialect,
                  memref::MemRefDialect>();
  return Lowering(ctx, file, diag).run();
}

void addCombineFunction(ModuleOp module, const Variant &v) {
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  auto dynamic = [&](int64_t rank, DType dtype, int64_t last) {
    SmallVector<int64_t> shape(size_t(rank), ShapedType::kDynamic);
    if (last > 0)
      shape.back() = last;
    return stridedMemRef(shape, b, dtype);
  };
  int64_t dv = staticExtent(v, v.valueDim);
  SmallVector<Type> types = {dynamic(5, DType::F32, dv), dynamic(4, DType::F32, -1),
                             dynamic(4, v.output.resolvedDType, dv), dynamic(3, DType::F32, -1)};
  Location loc = FileLineColLoc::get(b.getContext(), "<combine>", v.loc.line, v.loc.col);
  auto func = func::FuncOp::create(b, loc, v.name + "_combine", b.getFunctionType(types, {}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto args = entry->getArguments();
  attn::CombineOp::create(b, loc, args[0], args[1], args[2], args[3],
                         FloatAttr());
  func::ReturnOp::create(b, loc);
}

}  // namespace attnc
