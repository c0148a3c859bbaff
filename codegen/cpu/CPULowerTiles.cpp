// attn-cpu-lower-tiles: the tiled attn level -> scalar scf loops over memrefs, for the host.
// Plain loops keep the host code small and obviously faithful to each tile op's definition.
#include "codegen/cpu/Emit.h"
#include "codegen/cpu/Passes.h"
#include "dialect/MaskInterval.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCPULOWERTILES
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using mlir::attn::cpu::Emit;

namespace {

int64_t rows(Value tile) { return cast<MemRefType>(tile.getType()).getDimSize(0); }


/// (axis 0, axis 2) of key j of batch b in a k/v operand: (b, j), or in a page pool
/// (the page of table[b, j / P], clamped as buildPageLookup says, j % P).
std::pair<Value, Value> keyAt(Emit &e, Value kv, Value b, Value j, Value table,
                              int64_t pageSize) {
  if (!table)
    return {b, j};
  Value slot = arith::RemUIOp::create(e.b, e.loc, j, e.index(pageSize));
  return {buildPageLookup(e.b, e.loc, table, kv, b, j, pageSize), slot};
}

/// k or v at (axis 0, hk, axis 2, e) as f32, dequantised when `scale` is set: the stored value
/// times scale[key coordinates (b, hk, j, e) picked by `axes`, e / group on the channel axis].
Value loadKV(Emit &e, Value mem, ValueRange idx, Value scale, ArrayRef<int64_t> axes,
             int64_t group, std::array<Value, 4> key) {
  Value x = buildDequantToF32(e.b, e.loc, buildLoadStored(e.b, e.loc, mem, idx));
  if (!scale)
    return x;
  SmallVector<Value> at;
  for (int64_t a : axes)
    at.push_back(a == 3 && group > 1
                     ? arith::DivUIOp::create(e.b, e.loc, key[3], e.index(group)).getResult()
                     : key[size_t(a)]);
  return e.fmul(x, e.load(scale, at));
}

/// (head, query) of packed row p (buildPackedRow).
std::pair<Value, Value> packedRow(Emit &e, Value h, Value p, int64_t pack) {
  return buildPackedRow(e.b, e.loc, h, p, pack);
}

void lower(Emit &e, TileFillOp op) {
  Value value = e.f32(op.getValue().convertToFloat());
  auto type = cast<MemRefType>(op.getTile().getType());
  e.loop(e.index(rows(op.getTile())), [&](Emit &e, Value r) {
    if (type.getRank() == 1)
      return e.store(value, op.getTile(), r);
    e.loop(e.extent(op.getTile(), 1), [&](Emit &e, Value c) { e.store(value, op.getTile(), {r, c}); });
  });
}

void lower(Emit &e, TileScoresOp op) {
  Value q = op.getQ(), k = op.getK(), s = op.getS();
  Value b = op.getB(), hk = op.getHk();
  Value qLen = e.dim(q, 2), headDim = e.extent(q, 3);
  Value kvLen = buildKVLength(e.b, e.loc, k, op.getBlockTable(), op.getPageSize());
  Value fill = e.f32(op.getFill().convertToFloat());
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    auto [h, i] = packedRow(e, op.getH(), e.add(op.getI0(), r), op.getPack());
    Value rowIn = e.below(i, qLen);
    e.loop(e.extent(s, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      auto score = [&](Emit &e) {
        auto [kb, kj] = keyAt(e, k, b, j, op.getBlockTable(), op.getPageSize());
        Value dot = e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
          Value kd = loadKV(e, k, {kb, hk, kj, d}, op.getKScale(), op.getKScaleAxes(),
                            op.getKScaleGroup(), {b, hk, j, d});
          Value qd = e.load(q, {b, h, i, d});
          // Feature maps (linear attention's phi) apply elementwise before the product.
          if (!op.getFeatureQ().empty())
            qd = e.inlineRegion(op.getFeatureQ(), {qd});
          if (!op.getFeatureK().empty())
            kd = e.inlineRegion(op.getFeatureK(), {kd});
          return e.fadd(acc, e.fmul(qd, kd));
        });
        SmallVector<Value> args = {b, h, i, j, dot};
        if (op.getScore().getNumArguments() == 7) {  // the row norms dot(q, q), dot(k, k)
          args.push_back(e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
            Value qd = e.load(q, {b, h, i, d});
            return e.fadd(acc, e.fmul(qd, qd));
          }));
          args.push_back(e.reduce(headDim, e.f32(0), [&](Emit &e, Value d, Value acc) {
            Value kd = e.load(k, {kb, hk, kj, d});
            return e.fadd(acc, e.fmul(kd, kd));
          }));
        }
        Value s = e.inlineRegion(op.getScore(), args);
        if (op.getDecay().empty())
          return s;
        // A per-step decay: s * exp(log gamma(j + 1) + ... + log gamma(i)), empty past i;
        // with log_decay (a forget-gate softmax) s + that sum.
        Value past = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, j, i);
        Value steps = e.select(past, e.index(0), arith::SubIOp::create(e.b, e.loc, i, j));
        Value logSum = e.reduce(steps, e.f32(0), [&](Emit &e, Value n, Value acc) {
          Value t = e.add(e.add(j, e.index(1)), n);
          return e.fadd(acc, buildLogDecay(e.b, e.loc, e.inlineRegion(op.getDecay(), {b, h, t})));
        });
        return op.getLogDecay() ? e.fadd(s, logSum) : e.fmul(s, e.exp(logSum));
      };
      auto masked = [&](Emit &) { return fill; };
      // The mask and score run only in range, so their param loads stay in bounds.
      Value inRange = arith::AndIOp::create(e.b, e.loc, rowIn, e.below(j, kvLen));
      Value value = e.ifElse(inRange, [&](Emit &e) {
        if (op.getMask().empty())
          return score(e);
        return e.ifElse(e.inlineRegion(op.getMask(), {b, h, i, j}), score, masked);
      }, masked);
      e.store(value, s, {r, c});
    });
  });
}

void lower(Emit &e, TileRowMaxOp op) {
  Value s = op.getS(), m = op.getM();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value mx = e.reduce(e.extent(s, 1), e.load(m, r), [&](Emit &e, Value c, Value acc) {
      return e.fmax(acc, e.load(s, {r, c}));
    });
    e.store(mx, m, r);
  });
}

/// s[r, :] = exp(s[r, :] - base) in place; returns the row sum.
Value expRow(Emit &e, Value s, Value r, Value base) {
  return e.reduce(e.extent(s, 1), e.f32(0), [&](Emit &e, Value c, Value acc) {
    Value p = e.exp(e.fsub(e.load(s, {r, c}), base));
    e.store(p, s, {r, c});
    return e.fadd(acc, p);
  });
}

void lower(Emit &e, TileExpSumOp op) {
  Value s = op.getS(), m = op.getM(), l = op.getL();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value sum = expRow(e, s, r, e.safeBase(e.load(m, r)));
    e.store(e.fadd(e.load(l, r), sum), l, r);
  });
}

void lower(Emit &e, TileOnlineUpdateOp op) {
  Value s = op.getS(), m = op.getM(), l = op.getL(), acc = op.getAcc();
  std::optional<float> unified;
  if (op.getUnifiedMax())
    unified = op.getUnifiedMax()->convertToFloat();
  e.loop(e.index(rows(s)), [&](Emit &e, Value r) {
    Value mOld = e.load(m, r);
    Value mNew = e.reduce(e.extent(s, 1), mOld, [&](Emit &e, Value c, Value mx) {
      return e.fmax(mx, e.load(s, {r, c}));
    });
    Value fresh;
    if (unified) {  // a row without mass starts at max(M, its max), or its max far below M
      Value rowMax = e.reduce(e.extent(s, 1), e.f32(-std::numeric_limits<float>::infinity()),
                              [&](Emit &e, Value c, Value mx) {
                                return e.fmax(mx, e.load(s, {r, c}));
                              });
      fresh = e.feq(e.load(l, r), e.f32(0));
      Value low = arith::CmpFOp::create(e.b, e.loc, arith::CmpFPredicate::OLT, rowMax,
                                        e.f32(*unified - kUnifiedMaxRange));
      Value start = e.select(low, rowMax, e.fmax(e.f32(*unified), rowMax));
      mNew = e.select(fresh, start, mNew);
    }
    Value base = e.safeBase(mNew);
    Value alpha = e.exp(e.fsub(mOld, base));
    if (fresh)
      alpha = e.select(fresh, e.f32(0), alpha);
    Value sum = expRow(e, s, r, base);
    e.store(e.fadd(e.fmul(e.load(l, r), alpha), sum), l, r);
    e.loop(e.extent(acc, 1), [&](Emit &e, Value c) {
      e.store(e.fmul(e.load(acc, {r, c}), alpha), acc, {r, c});
    });
    e.store(mNew, m, r);
  });
}

void lower(Emit &e, TileMatmulAccOp op) {
  Value p = op.getP(), v = op.getV(), acc = op.getAcc();
  Value kvLen = buildKVLength(e.b, e.loc, v, op.getBlockTable(), op.getPageSize());
  e.loop(e.index(rows(p)), [&](Emit &e, Value r) {
    e.loop(e.extent(p, 1), [&](Emit &e, Value c) {
      Value j = e.add(op.getJ0(), c);
      e.when(e.below(j, kvLen), [&](Emit &e) {
        Value pv = e.load(p, {r, c});
        auto [vb, vj] = keyAt(e, v, op.getB(), j, op.getBlockTable(), op.getPageSize());
        e.loop(e.extent(acc, 1), [&](Emit &e, Value ch) {
          Value vd = loadKV(e, v, {vb, op.getHk(), vj, ch}, op.getVScale(), op.getVScaleAxes(),
                            op.getVScaleGroup(), {op.getB(), op.getHk(), j, ch});
          Value term = e.fmul(pv, vd);
          e.store(e.fadd(e.load(acc, {r, ch}), term), acc, {r, ch});
        });
      });
    });
  });
}

void lower(Emit &e, TileStoreOp op) {
  Value acc = op.getAcc(), out = op.getOut(), b = op.getB();
  Value qLen = e.dim(out, 2);
  bool softmax = op.getNorm() == NormKind::softmax;
  Value partOut = op.getPartOut(), partLse = op.getPartLse();
  // Split-KV form: partial results go to the split's slice when there are several splits.
  Value partial;
  if (partOut)
    partial = arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, e.dim(partOut, 0),
                                    e.index(1));
  e.loop(e.index(rows(acc)), [&](Emit &e, Value r) {
    auto [h, i] = packedRow(e, op.getH(), e.add(op.getI0(), r), op.getPack());
    e.when(e.below(i, qLen), [&](Emit &e) {
      // Per score (several scores: the extra accumulators too): 1 / l and the lse.
      SmallVector<Value> accs = {acc}, scales, lses;
      llvm::append_range(accs, op.getMoreAcc());
      for (size_t n = 0; n < accs.size(); ++n) {
        Value scale = e.f32(1), lse;
        if (softmax) {
          Value l = e.load(n ? op.getMoreL()[n - 1] : op.getL(), r);
          Value any = e.fgt(l, e.f32(0));
          scale = e.select(any, arith::DivFOp::create(e.b, e.loc, e.f32(1), l), e.f32(0));
          Value m = e.load(n ? op.getMoreM()[n - 1] : op.getM(), r);
          Value logSum = e.fadd(m, math::LogOp::create(e.b, e.loc, l));
          lse = e.select(any, logSum, e.f32(-std::numeric_limits<float>::infinity()));
        }
        scales.push_back(scale);
        lses.push_back(lse);
      }
      Value scale = scales[0], lse = lses[0];
      // The row's element c before the rmsnorm: the normalised accumulator, or the mix of
      // every score's.
      auto element = [&](Emit &e, Value c, Value rowScale) -> Value {
        if (accs.size() == 1)
          return e.fmul(e.load(acc, {r, c}), rowScale);
        SmallVector<Value> args = {b, h, i, c};
        for (size_t n = 0; n < accs.size(); ++n)
          args.push_back(e.fmul(e.load(accs[n], {r, c}), scales[n]));
        return e.fmul(e.inlineRegion(op.getMix(), args), rowScale);
      };
      auto write = [&](Emit &e, bool toPartial) {
        if (op.getLse())
          toPartial ? e.store(lse, partLse, {op.getSplit(), b, h, i})
                    : e.store(lse, op.getLse(), {b, h, i});
        for (auto [n, moreLse] : llvm::enumerate(op.getMoreLse()))
          e.store(lses[n + 1], moreLse, {b, h, i});
        // one score: the accumulator times 1 / l; several: the mix (times 1 below)
        Value rowScale = accs.size() == 1 ? scale : e.f32(1);
        if (auto eps = op.getRmsEpsAttr(); eps && !toPartial) {
          // rmsnorm: the row over sqrt(mean of its squares + eps)
          Value width = e.extent(acc, 1);
          Value sq = e.reduce(width, e.f32(0), [&](Emit &e, Value c, Value sum) {
            Value x = element(e, c, rowScale);
            return e.fadd(sum, e.fmul(x, x));
          });
          rowScale = e.fmul(rowScale, e.rmsFactor(sq, width, eps.getValueAsDouble()));
        }
        e.loop(e.extent(acc, 1), [&](Emit &e, Value c) {
          Value x = element(e, c, rowScale);
          if (toPartial)
            return e.store(x, partOut, {op.getSplit(), b, h, i, c});
          if (!op.getOutput().empty())  // the output map of the finished row's element
            x = e.inlineRegion(op.getOutput(), {b, h, i, c, x});
          e.store(x, out, {b, h, i, c});
        });
      };
      if (!partial)
        return write(e, false);
      scf::IfOp::create(
          e.b, e.loc, partial,
          [&](OpBuilder &nb, Location l) {
            Emit inner{nb, l};
            write(inner, true);
            scf::YieldOp::create(nb, l);
          },
          [&](OpBuilder &nb, Location l) {
            Emit inner{nb, l};
            write(inner, false);
            scf::YieldOp::create(nb, l);
          });
    });
  });
}

/// lse = log sum_s exp(lse_s), out = sum_s exp(lse_s - lse) o_s (0 and -inf with no key at all),
/// then the rmsnorm and the output map of a split attention with an output expression.
void lower(Emit &e, CombineOp op) {
  Value part = op.getPartOut(), partLse = op.getPartLse(), out = op.getOut(), lse = op.getLse();
  Value splits = e.dim(part, 0);
  Value negInf = e.f32(-std::numeric_limits<float>::infinity());
  e.when(arith::CmpIOp::create(e.b, e.loc, arith::CmpIPredicate::ugt, splits, e.index(1)),
         [&](Emit &e) {
    e.loop(e.dim(out, 0), [&](Emit &e, Value b) {
      e.loop(e.dim(out, 1), [&](Emit &e, Value h) {
        e.loop(e.dim(out, 2), [&](Emit &e, Value i) {
          Value mx = e.reduce(splits, negInf, [&](Emit &e, Value s, Value m) {
            return e.fmax(m, e.load(partLse, {s, b, h, i}));
          });
          Value none = e.feq(mx, negInf);
          Value base = e.safeBase(mx);
          Value sum = e.reduce(splits, e.f32(0), [&](Emit &e, Value s, Value acc) {
            return e.fadd(acc, e.exp(e.fsub(e.load(partLse, {s, b, h, i}), base)));
          });
          Value total = e.fadd(base, math::LogOp::create(e.b, e.loc, sum));
          e.store(e.select(none, negInf, total), lse, {b, h, i});
          auto merged = [&](Emit &e, Value c) {
            Value o = e.reduce(splits, e.f32(0), [&](Emit &e, Value s, Value acc) {
              Value w = e.exp(e.fsub(e.load(partLse, {s, b, h, i}), total));
              return e.fadd(acc, e.fmul(w, e.load(part, {s, b, h, i, c})));
            });
            return e.select(none, e.f32(0), o);
          };
          Value width = e.extent(out, 3), rowScale;
          if (auto eps = op.getRmsEpsAttr()) {  // the merged row's rmsnorm (a second pass)
            Value sq = e.reduce(width, e.f32(0), [&](Emit &e, Value c, Value sum) {
              Value x = merged(e, c);
              return e.fadd(sum, e.fmul(x, x));
            });
            rowScale = e.rmsFactor(sq, width, eps.getValueAsDouble());
          }
          e.loop(width, [&](Emit &e, Value c) {
            Value x = merged(e, c);
            if (rowScale)
              x = e.fmul(x, rowScale);
            if (!op.getOutput().empty())  // the output map of the merged row's element
              x = e.inlineRegion(op.getOutput(), {b, h, i, c, x});
            e.store(x, out, {b, h, i, c});
          });
        });
      });
    });
  });
}

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

void lower(Emit &e, ChunkStepOp op) { ChunkStepLowering(e, op).run(e); }

/// The block plan's key range, evaluated where it stands (the CPU needs no separate kernel).
struct LowerKeyRange : OpRewritePattern<TileKeyRangeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TileKeyRangeOp op, PatternRewriter &rw) const override {
    rw.setInsertionPoint(op);
    Location loc = op.getLoc();
    auto zero = arith::ConstantIndexOp::create(rw, loc, 0);
    auto one = arith::ConstantIndexOp::create(rw, loc, 1);
    KeyRange range = finishKeyRange(rw, loc, op, scanKeyRange(rw, loc, op, IRMapping(), zero, one));
    rw.replaceOp(op, ValueRange{range.lower, range.upper, range.fullLower, range.fullUpper});
    return success();
  }
};

template <typename OpTy>
struct LowerTileOp : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op, PatternRewriter &rw) const override {
    rw.setInsertionPoint(op);
    Emit e{rw, op.getLoc()};
    lower(e, op);
    rw.eraseOp(op);
    return success();
  }
};

struct AttnCPULowerTilesPass : mlir::attn::impl::AttnCPULowerTilesBase<AttnCPULowerTilesPass> {
  void runOnOperation() override {
    WalkResult untiled = getOperation().walk([](AttentionOp op) {
      op.emitError("attn.attention must be tiled (attn-tile) before attn-cpu-lower-tiles");
      return WalkResult::interrupt();
    });
    if (untiled.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateCPULowerTilesPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::attn::populateCPULowerTilesPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerTileOp<TileFillOp>, LowerTileOp<TileScoresOp>, LowerTileOp<TileRowMaxOp>,
               LowerTileOp<TileExpSumOp>, LowerTileOp<TileOnlineUpdateOp>,
               LowerTileOp<TileMatmulAccOp>, LowerTileOp<TileStoreOp>, LowerTileOp<CombineOp>,
               LowerTileOp<ChunkStepOp>, LowerKeyRange>(
      patterns.getContext());
}
