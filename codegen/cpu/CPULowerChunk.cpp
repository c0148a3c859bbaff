// attn-cpu-lower-tiles, the recurrences: one attn.chunk_step (a chunk of a linear recurrence)
// as scalar loops for the host (the tile ops: CPULowerTiles.cpp).
#include "codegen/cpu/Emit.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::attn;
using mlir::attn::cpu::Emit;

namespace {

/// One chunk of a recurrence (see attn.chunk_step): the per-step log decays g, the weights
/// P[r, c] of the chunk's own keys, the output rows (state term + P.V), then the state update.
class ChunkStepLowering {
public:
  ChunkStepLowering(Emit &e, ChunkStepOp op) : op(op) {
    q = op.getQ(), k = op.getK(), v = op.getV(), S = op.getState(), out = op.getOut();
    b = op.getB(), h = op.getH(), hk = op.getHk(), n0 = op.getN0();
    chunk = int64_t(op.getChunk());
    qLen = e.dim(q, 2), kvLen = e.dim(k, 2);
    // With a projection w [m, d] (Performer) the features, the dot and the state's rows run
    // over m; feature m of row x is the map of (x . w[m], x . x).
    w = op.getProjection();
    headDim = w ? e.extent(w, 0) : e.extent(q, 3), valueDim = e.extent(out, 3);
    // R = min(chunk, q_len - n0) rows.
    rows = arith::MinUIOp::create(e.b, e.loc, e.index(chunk),
                                  arith::SubIOp::create(e.b, e.loc, qLen, n0));
    // q and k heads: h and hk, or h / G for both with q/k head groups (qk_group G).
    qh = h, kh = hk;
    if (op.getQkGroup() > 1)
      qh = kh = arith::DivUIOp::create(e.b, e.loc, h, e.index(int64_t(op.getQkGroup())));
    gated = !op.getGate().empty();
    normalize = op.getNormalize();
    strict = op.getStrict();
  }

  void run(Emit &e) {
    g = f32Tile(e, {chunk}), P = f32Tile(e, {chunk, chunk});
    if (w)
      projectFeatures(e);
    logDecays(e);
    if (gated)
      logGates(e);
    weights(e);
    writeRows(e);
    updateState(e);
  }

private:
  ChunkStepOp op;
  Value q, k, v, S, out, b, h, hk, n0, qLen, kvLen, w, headDim, valueDim, rows, qh, kh;
  int64_t chunk = 0;
  bool gated = false, normalize = false, strict = false;
  Value g, P, G, fq, fk;  // the chunk's f32 buffers

  /// The chunk's f32 buffers ([chunk] or [chunk, chunk], or [chunk, d] with d dynamic) are
  /// allocated at the function's entry when q is its argument: allocas inside attn-chunk's
  /// loops would pile up on the stack once per (b, h, chunk) (a stack overflow at 1024 heads).
  Value f32Tile(Emit &e, ArrayRef<int64_t> shape) {
    OpBuilder::InsertionGuard guard(e.b);
    auto func = op->getParentOfType<func::FuncOp>();
    auto arg = dyn_cast<BlockArgument>(q);
    if (func && arg && arg.getOwner() == &func.front())
      e.b.setInsertionPointToStart(&func.front());
    auto type = MemRefType::get(shape, e.b.getF32Type());
    SmallVector<Value> dynamic;
    if (type.getNumDynamicDims())  // [chunk, d]: d from q's last axis
      dynamic.push_back(memref::DimOp::create(e.b, e.loc, q, 3));
    return memref::AllocaOp::create(e.b, e.loc, type, dynamic).getResult();
  }

  Value projected(Emit &e, Region &feature, Value x, Value head, Value pos, Value m) {
    Value rawDim = e.extent(x, 3);
    Value p = e.reduce(rawDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
      return e.fadd(acc, e.fmul(e.load(x, {b, head, pos, d}), e.load(w, {m, d})));
    });
    Value sq = e.reduce(rawDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
      Value xd = e.load(x, {b, head, pos, d});
      return e.fadd(acc, e.fmul(xd, xd));
    });
    return e.inlineRegion(feature, {p, sq});
  }

  /// The chunk's projected features, fq [chunk, m] and fk [chunk, m] (rows past q_len or
  /// kv_len left as they are: never read), computed once per chunk.
  void projectFeatures(Emit &e) {
    int64_t m = cast<MemRefType>(w.getType()).getDimSize(0);  // static (the verifier)
    fq = f32Tile(e, {chunk, m}), fk = f32Tile(e, {chunk, m});
    e.loop(e.index(chunk), [&](Emit &e, Value r) {
      Value p = e.add(n0, r);
      e.when(e.below(p, qLen), [&](Emit &e) {
        e.loop(headDim, [&](Emit &e, Value f) {
          e.store(projected(e, op.getFeatureQ(), q, qh, p, f), fq, {r, f});
        });
      });
      e.when(e.below(p, kvLen), [&](Emit &e) {
        e.loop(headDim, [&](Emit &e, Value f) {
          e.store(projected(e, op.getFeatureK(), k, kh, p, f), fk, {r, f});
        });
      });
    });
  }

  Value local(Emit &e, Value p) { return arith::SubIOp::create(e.b, e.loc, p, n0); }
  Value mapped(Emit &e, Region &feature, Value x) {
    return feature.empty() ? x : e.inlineRegion(feature, {x});
  }
  Value qAt(Emit &e, Value i, Value d) {
    if (w)
      return e.load(fq, {local(e, i), d});
    return mapped(e, op.getFeatureQ(), e.load(q, {b, qh, i, d}));
  }
  Value kAt(Emit &e, Value j, Value d) {
    if (w)
      return e.load(fk, {local(e, j), d});
    return mapped(e, op.getFeatureK(), e.load(k, {b, kh, j, d}));
  }
  /// The score's key factor of key position j (1 without a key_scale region).
  Value keyScale(Emit &e, Value j) {
    return op.getKeyScale().empty() ? e.f32(1) : e.inlineRegion(op.getKeyScale(), {b, h, j});
  }

  /// g[r] = log gamma(n0) + ... + log gamma(n0 + r); 0 without a decay.
  void logDecays(Emit &e) {
    e.reduce(rows, e.f32(0), [&](Emit &e, Value r, Value sum) {
      Value next = sum;
      if (!op.getDecay().empty())
        next = e.fadd(sum, buildLogDecay(e.b, e.loc,
                                         e.inlineRegion(op.getDecay(), {b, h, e.add(n0, r)})));
      e.store(next, g, {r});
      return next;
    });
  }

  /// A gate: G[r, e] = log gate(n0, e) + ... + log gate(n0 + r, e) per head channel e.
  void logGates(Emit &e) {
    G = f32Tile(e, {chunk, cast<MemRefType>(q.getType()).getDimSize(3)});
    e.loop(headDim, [&](Emit &e, Value d) {
      e.reduce(rows, e.f32(0), [&](Emit &e, Value r, Value sum) {
        Value gate = e.inlineRegion(op.getGate(), {b, h, e.add(n0, r), d});
        Value next = e.fadd(sum, buildLogDecay(e.b, e.loc, gate));
        e.store(next, G, {r, d});
        return next;
      });
    });
  }

  /// Row r's cumulative log decay as a query: g[r], or strict g[r - 1] (0 for r = 0) -- the
  /// state before step n0 + r.
  Value queryLogDecay(Emit &e, Value r) { return queryCum(e, g, r, {}); }
  Value queryCum(Emit &e, Value cum, Value r, ArrayRef<Value> channel) {
    auto at = [&](Emit &e, Value row) {
      SmallVector<Value> index = {row};
      index.append(channel.begin(), channel.end());
      return e.load(cum, index);
    };
    if (!strict)
      return at(e, r);
    Value first = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::eq, r, e.index(0));
    return e.ifElse(first, [&](Emit &e) { return e.f32(0); }, [&](Emit &e) {
      return at(e, arith::SubIOp::create(e.b, e.loc, r, e.index(1)));
    });
  }

  /// exp(G[r, d] - G[c, d]) (r and c rows of the chunk; c null: G = 0), 1 without a gate; with
  /// `query` row r is a query (strict: G[r - 1, d]).
  Value gateBetween(Emit &e, Value r, Value c, Value d, bool query = false) {
    if (!gated)
      return e.f32(1);
    Value from = c ? e.load(G, {c, d}) : e.f32(0);
    Value to = query ? queryCum(e, G, r, {d}) : e.load(G, {r, d});
    return e.exp(e.fsub(to, from));
  }

  /// Strict with a bonus: the current token's weight, score(i, i, sum_d fq(q_i)[d] fk(k_i)[d]
  /// bonus(d)) * key_scale(i).
  Value bonusWeight(Emit &e, Value i) {
    Value dot = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
      Value u = e.inlineRegion(op.getBonus(), {b, h, i, d});
      return e.fadd(acc, e.fmul(e.fmul(qAt(e, i, d), kAt(e, i, d)), u));
    });
    return e.fmul(e.inlineRegion(op.getScore(), {b, h, i, i, dot}), keyScale(e, i));
  }

  /// P[r, c] = score(i, j, fq(q_i).fk(k_j)) * key_scale(j) * exp(g[r] - g[c]) for c <= r and
  /// j < kv_len, else 0; with a gate, channel d of the dot takes exp(G[r, d] - G[c, d]).
  /// Strict: c < r and the query's g[r - 1] (G[r - 1, d]); the diagonal is the bonus weight
  /// (0 without a bonus).
  void weights(Emit &e) {
    bool bonus = !op.getBonus().empty();
    e.loop(rows, [&](Emit &e, Value r) {
      Value i = e.add(n0, r);
      Value gq = queryLogDecay(e, r);
      e.loop(e.index(chunk), [&](Emit &e, Value c) {
        Value j = e.add(n0, c);
        auto before = strict ? arith::CmpIPredicate::ult : arith::CmpIPredicate::ule;
        Value visible = arith::AndIOp::create(
            e.b, e.loc, arith::CmpIOp::create(e.b, e.loc, before, c, r), e.below(j, kvLen));
        Value weight = e.ifElse(visible, [&](Emit &e) {
          Value dot = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
            Value term = e.fmul(qAt(e, i, d), kAt(e, j, d));
            return e.fadd(acc, gated ? e.fmul(term, gateBetween(e, r, c, d, true)) : term);
          });
          Value s = e.fmul(e.inlineRegion(op.getScore(), {b, h, i, j, dot}), keyScale(e, j));
          return e.fmul(s, e.exp(e.fsub(gq, e.load(g, {c}))));
        }, [&](Emit &e) {
          if (!bonus)
            return e.f32(0);
          Value diagonal = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::eq, c, r);
          return e.ifElse(diagonal, [&](Emit &e) { return bonusWeight(e, i); },
                          [&](Emit &e) { return e.f32(0); });
        });
        e.store(weight, P, {r, c});
      });
    });
  }

  /// Normalize: state column dv is the running sum z of the keys' weights (v_j = 1 there).
  Value valueAt(Emit &e, Value j, Value ch) {
    if (!normalize)
      return e.load(v, {b, hk, j, ch});
    return e.ifElse(e.below(ch, valueDim), [&](Emit &e) { return e.load(v, {b, hk, j, ch}); },
                    [&](Emit &e) { return e.f32(1); });
  }

  /// Row r's column ch (ch = dv: its weight sum with normalize): exp(g[r]) c_i fq(q_i) S[:, ch]
  /// + sum_c P[r, c] v_j[ch], with c_i = score(i, i, 1) (strict: g[r - 1], G[r - 1, d]).
  Value rowColumn(Emit &e, Value r, Value ch) {
    Value i = e.add(n0, r);
    Value carried = e.fmul(e.exp(queryLogDecay(e, r)),
                           e.inlineRegion(op.getScore(), {b, h, i, i, e.f32(1)}));
    Value fromState = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
      Value qd = qAt(e, i, d);
      if (gated)
        qd = e.fmul(qd, gateBetween(e, r, Value(), d, true));
      return e.fadd(acc, e.fmul(qd, e.load(S, {d, ch})));
    });
    return e.reduce(rows, e.fmul(carried, fromState), [&](Emit &e, Value c, Value acc) {
      Value j = arith::MinUIOp::create(e.b, e.loc, e.add(n0, c),
                                       arith::SubIOp::create(e.b, e.loc, kvLen, e.index(1)));
      return e.fadd(acc, e.fmul(e.load(P, {r, c}), valueAt(e, j, ch)));
    });
  }

  /// The factor of row r's columns: 1 / its weight sum (normalize; 0 where it is 0), times the
  /// rms normalisation (rms_eps).
  Value rowScale(Emit &e, Value r) {
    Value scale = e.f32(1);
    if (normalize) {
      Value sum = rowColumn(e, r, valueDim);
      Value zero = e.feq(sum, e.f32(0));
      scale = e.select(zero, e.f32(0),
                       arith::DivFOp::create(e.b, e.loc, e.f32(1), e.select(zero, e.f32(1), sum)));
    }
    if (auto eps = op.getRmsEps()) {
      Value squares = e.reduce(valueDim, e.f32(0), [&](Emit &e, Value ch, Value acc) {
        Value x = e.fmul(rowColumn(e, r, ch), scale);
        return e.fadd(acc, e.fmul(x, x));
      });
      scale = e.fmul(scale, e.rmsFactor(squares, valueDim, eps->convertToFloat()));
    }
    return scale;
  }

  /// out[i, :] = row r's columns times its scale, plus the skip term.
  void writeRows(Emit &e) {
    e.loop(rows, [&](Emit &e, Value r) {
      Value i = e.add(n0, r);
      Value scale = rowScale(e, r);
      e.loop(valueDim, [&](Emit &e, Value ch) {
        Value x = e.fmul(rowColumn(e, r, ch), scale);
        if (!op.getSkip().empty())  // + skip(b, h, i, e, v[b, hk, i, e])
          x = e.fadd(x, e.inlineRegion(op.getSkip(), {b, h, i, ch, e.load(v, {b, hk, i, ch})}));
        e.store(x, out, {b, h, i, ch});
      });
    });
  }

  /// S = exp(g[R-1]) S + sum_{c < R, j < kv_len} exp(g[R-1] - g[c]) fk(k_j) v_j^T; with a
  /// gate, row d of S also decays by exp(G[R-1, d]) and key c's channel d by exp(G[R-1, d] -
  /// G[c, d]).
  void updateState(Emit &e) {
    Value last = arith::SubIOp::create(e.b, e.loc, rows, e.index(1));
    Value gLast = e.load(g, {last});
    Value stateColumns = normalize ? e.add(valueDim, e.index(1)) : valueDim;
    e.loop(headDim, [&](Emit &e, Value d) {
      e.loop(stateColumns, [&](Emit &e, Value ch) {
        Value decayed = e.fmul(e.fmul(e.exp(gLast), gateBetween(e, last, Value(), d)),
                               e.load(S, {d, ch}));
        Value sum = e.reduce(rows, decayed, [&](Emit &e, Value c, Value acc) {
          Value j = e.add(n0, c);
          return e.ifElse(e.below(j, kvLen), [&](Emit &e) {
            Value weight = e.fmul(e.exp(e.fsub(gLast, e.load(g, {c}))), gateBetween(e, last, c, d));
            weight = e.fmul(weight, keyScale(e, j));
            return e.fadd(acc, e.fmul(weight, e.fmul(kAt(e, j, d), valueAt(e, j, ch))));
          }, [&](Emit &) { return acc; });
        });
        e.store(sum, S, {d, ch});
      });
    });
  }
};

} // namespace

void mlir::attn::cpu::lowerChunkStep(Emit &e, ChunkStepOp op) { ChunkStepLowering(e, op).run(e); }
