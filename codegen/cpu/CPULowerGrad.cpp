// attn-cpu-lower-grad: attn.attention_grad -> scalar scf loops for the host, the backward by
// recomputation written as plainly as its definition (dialect/AttnOps.td).
#include "codegen/cpu/Emit.h"
#include "codegen/cpu/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"

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
  /// The query row being differentiated for one score: its position, kv head, D and lse.
  struct Row {
    Value b, h, hk, i, rowD, rowLse, empty;
  };
  /// One score (several with a mix): its q, k and lse, the f32 scratch of its q's and k's
  /// gradients (shared by the scores that read the same tensor), its regions, and through an
  /// output expression its recomputed row y and the gradient dy that takes dout's place.
  struct Score {
    Value q, k, lse, dq, dk;
    Region *score, *grad;
    Value yRow, dyRow;
  };
  AttentionGradOp op;
  Emit e;
  Value v, out, dout, dv, headDim, valueDim, kvLen, qLen, group;
  SmallVector<Score> scores;
  llvm::MapVector<Value, Value> scratch;  // a gradient output -> its f32 accumulator
  Value dqRow, cumRow, colSum, rowSum, mRow;  // scratch rows (some null)
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
  void forKeys(Emit &ek, const Score &sc, const Row &r,
               function_ref<void(Emit &, Value, ValueRange, Value)> body);
  void recomputeMapped(Emit &ei, SmallVector<Row> &rows);
  void keyGrads(Emit &ei, const Score &sc, const Row &r);
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
void GradLowering::forKeys(Emit &ek, const Score &sc, const Row &r,
                           function_ref<void(Emit &, Value, ValueRange, Value)> body) {
  Value q = sc.q, k = sc.k;
  ek.loop(kvLen, [&](Emit &ej, Value j) {
    auto visit = [&](Emit &x) {
      SmallVector<Value> dt = {dot(x, headDim, rowOf(q, r.b, r.h, r.i), rowOf(k, r.b, r.hk, j))};
      if (rowNorms)
        dt.append({dot(x, headDim, rowOf(q, r.b, r.h, r.i), rowOf(q, r.b, r.h, r.i)),
                   dot(x, headDim, rowOf(k, r.b, r.hk, j), rowOf(k, r.b, r.hk, j))});
      SmallVector<Value> args = {r.b, r.h, r.i, j};
      args.append(dt.begin(), dt.end());
      Value s = x.inlineRegion(*sc.score, args);
      if (forget)  // + log gamma(j + 1) + ... + log gamma(i); the mask keeps j <= i
        s = x.fadd(s, x.fsub(x.load(cumRow, {r.i}), x.load(cumRow, {asPosition(x, j)})));
      body(x, j, dt, s);
    };
    if (op.getMask().empty())
      return visit(ej);
    ej.when(ej.inlineRegion(op.getMask(), {r.b, r.h, r.i, j}), visit);
  });
}

/// Through an output expression: each score's y_n = sum_j P_n v_j, their mix m (y_0 with one
/// score), z = m r (rmsnorm) or m, dz from output_grad, dm through the norm, each score's
/// dy_n = dm dmix/dy_n (its dyRow, which takes dout's place) and D_n = dy_n . y_n.
void GradLowering::recomputeMapped(Emit &ei, SmallVector<Row> &rows) {
  for (auto [sc, row] : llvm::zip(scores, rows)) {
    Value yRow = sc.yRow;
    zero(ei, yRow);
    forKeys(ei, sc, row, [&](Emit &x, Value j, ValueRange, Value s) {
      Value p = weight(x, row, s);
      x.loop(valueDim, [&](Emit &xe, Value c) {
        xe.store(xe.fadd(xe.load(yRow, {c}), xe.fmul(p, xe.load(v, {row.b, row.hk, j, c}))),
                 yRow, {c});
      });
    });
  }
  const Row &row = rows.front();
  auto ys = [&](Emit &x, Value c) {  // the rows' elements at channel c
    SmallVector<Value> y;
    for (const Score &sc : scores)
      y.push_back(x.load(sc.yRow, {c}));
    return y;
  };
  Value m = scores.front().yRow;
  if (scores.size() > 1) {  // m = mix(y_0, ..., y_N)
    m = mRow;
    ei.loop(valueDim, [&](Emit &xe, Value c) {
      SmallVector<Value> args = {row.b, row.h, row.i, c};
      args.append(ys(xe, c));
      xe.store(xe.inlineRegion(op.getMix(), args), mRow, {c});
    });
  }
  Value dm = scores.front().dyRow;  // dm, then (one score) dy_0 in place
  Value r = ei.f32(1);
  if (auto eps = op.getRmsEpsAttr())
    r = ei.rmsFactor(dot(ei, valueDim, vectorOf(m), vectorOf(m)), valueDim,
                     eps.getValueAsDouble());
  ei.loop(valueDim, [&](Emit &xe, Value c) {
    Value z = xe.fmul(xe.load(m, {c}), r), g = xe.load(dout, {row.b, row.h, row.i, c});
    Value dz = op.getOutputGrad().empty()
                   ? g
                   : inlineGrad(xe, op.getOutputGrad(), {row.b, row.h, row.i, c, z, g})[0];
    xe.store(dz, dm, {c});
  });
  if (op.getRmsEps()) {  // dm = r (dz - z mean(dz z)), z = m r
    Value mean = arith::DivFOp::create(
        ei.b, ei.loc, ei.fmul(dot(ei, valueDim, vectorOf(dm), vectorOf(m)), r),
        ei.indexToF32(valueDim));
    ei.loop(valueDim, [&](Emit &xe, Value c) {
      Value z = xe.fmul(xe.load(m, {c}), r);
      xe.store(xe.fmul(r, xe.fsub(xe.load(dm, {c}), xe.fmul(z, mean))), dm, {c});
    });
  }
  if (scores.size() > 1)  // dy_n = dm dmix/dy_n (dm in dy_0's row, read before it is written)
    ei.loop(valueDim, [&](Emit &xe, Value c) {
      SmallVector<Value> args = {row.b, row.h, row.i, c};
      args.append(ys(xe, c));
      args.push_back(xe.load(dm, {c}));
      SmallVector<Value> dy = inlineGrad(xe, op.getMixGrad(), args);
      for (auto [sc, d] : llvm::zip(scores, dy))
        xe.store(d, sc.dyRow, {c});
    });
  if (norm == NormKind::softmax)
    for (auto [sc, rw] : llvm::zip(scores, rows))
      rw.rowD = dot(ei, valueDim, vectorOf(sc.dyRow), vectorOf(sc.yRow));
}

/// dS of each key of the row, and from it dq (the row's, stored at the end), dk, dv, the
/// params' gradients and the forget gate's column and row sums.
void GradLowering::keyGrads(Emit &ei, const Score &sc, const Row &r) {
  Value q = sc.q, k = sc.k, dk = sc.dk;
  // dout's row (dy's through an output expression) at value channel c
  auto gradAt = [&](Emit &x, Value c) {
    return mapped ? x.load(sc.dyRow, {c}) : x.load(dout, {r.b, r.h, r.i, c});
  };
  zero(ei, dqRow);
  forKeys(ei, sc, r, [&](Emit &x, Value j, ValueRange dt, Value s) {
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
    SmallVector<Value> d = inlineGrad(x, *sc.grad, args);
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
    SmallVector<Value> at = {r.b, r.h, r.i, d};
    xd.store(xd.fadd(xd.load(sc.dq, at), xd.load(dqRow, {d})), sc.dq, at);
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
    SmallVector<Row> rows;
    for (const Score &sc : scores) {
      Row r{b, h, hk, i, Value(), Value(), Value()};
      // D = dout . out (through an output expression: dy . y, in recomputeMapped)
      r.rowD = norm == NormKind::softmax && !mapped
                   ? dot(ei, valueDim, rowOf(dout, b, h, i), rowOf(out, b, h, i))
                   : ei.f32(0);
      r.rowLse = sc.lse ? ei.load(sc.lse, {b, h, i}) : Value();
      r.empty = sc.lse ? ei.feq(r.rowLse, ei.f32(-std::numeric_limits<float>::infinity()))
                       : Value();
      rows.push_back(r);
    }
    if (mapped)
      recomputeMapped(ei, rows);
    for (auto [sc, r] : llvm::zip(scores, rows))
      keyGrads(ei, sc, r);
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
  v = op.getV(), out = op.getOut(), dout = op.getDout();
  norm = op.getNorm();
  llvm::SetVector<Value> paramGrads;
  op->walk([&](AccumulateOp acc) { paramGrads.insert(acc.getGrad()); });
  for (Value g : paramGrads)
    zero(e, g);
  // f32 accumulators of dq, dk, dv and the extra scores' gradients (one per buffer: a tensor
  // several scores read sums their contributions)
  auto accumulator = [&](Value grad) {
    auto [it, fresh] = scratch.insert({grad, Value()});
    if (fresh) {
      it->second = scratchLike(e, grad);
      zero(e, it->second);
    }
    return it->second;
  };
  Value dq = accumulator(op.getDq()), dk = accumulator(op.getDk());
  dv = accumulator(op.getDv());
  scores.push_back({op.getQ(), op.getK(), op.getLse(), dq, dk, &op.getScore(),
                    &op.getScoreGrad()});
  for (size_t n = 0; n < op.getMoreQ().size(); ++n)
    scores.push_back({op.getMoreQ()[n], op.getMoreK()[n], op.getMoreLse()[n],
                      accumulator(op.getMoreDq()[n]), accumulator(op.getMoreDk()[n]),
                      &op.getMoreScore(unsigned(n)), &op.getMoreScoreGrad(unsigned(n))});
  Value q = op.getQ();
  headDim = e.extent(q, 3), valueDim = e.extent(v, 3), kvLen = e.extent(op.getK(), 2);
  dqRow = row(headDim);
  // A forget gate: per (b, h) the cumulative log decays cum[t], and the column and row sums of
  // dS (colSum[j], rowSum[i]) whose prefix sums give each log decay's gradient.
  forget = !op.getDecay().empty();
  rowNorms = op.getScore().front().getNumArguments() == 7;  // dot(q, q), dot(k, k)
  qLen = e.extent(q, 2);
  if (forget)
    cumRow = row(qLen), colSum = row(qLen), rowSum = row(qLen);
  // Through an output expression (or a mix of several scores): the recomputed rows y_n, their
  // mix, and the gradients dy_n that take dout's place (see attn.attention_grad).
  mapped = !op.getOutputGrad().empty() || op.getRmsEps() || scores.size() > 1;
  if (mapped)
    for (Score &sc : scores)
      sc.yRow = row(valueDim), sc.dyRow = row(valueDim);
  if (scores.size() > 1)
    mRow = row(valueDim);
  group = e.index(int64_t(op.getGroup()));
  e.loop(e.extent(q, 0), [&](Emit &eb, Value b) {
    eb.loop(eb.extent(q, 1), [&](Emit &eh, Value h) { perHead(eh, b, h); });
  });
  SmallVector<Value> rows = {dqRow, cumRow, colSum, rowSum, mRow};
  for (auto [grad, acc] : scratch) {
    copyInto(e, acc, grad);
    rows.push_back(acc);
  }
  for (const Score &sc : scores)
    rows.append({sc.yRow, sc.dyRow});
  for (Value x : rows)
    if (x)
      memref::DeallocOp::create(e.b, e.loc, x);
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
