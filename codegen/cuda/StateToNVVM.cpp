// A recurrence's state in registers: attn_gpu.load_state / store_state (global f32),
// share_state (its 16-bit copy in shared memory, the B operand of the next chunk's q S) and
// state_update (decay, then + (K w)^T V on tensor cores, K^T read by ldmatrix.trans as the A
// operand). Each warp owns a block of state rows (stateRowBase); element (mt, n, e) of its
// fragment is row base + 16 mt + g + 8 (e / 2), column 8 n + 2 c + e % 2.
#include "codegen/cuda/GPUToNVVM.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attngpu;

Value mlir::attn::stateRowBase(ThreadContext &t, int64_t rows, int64_t blockRows) {
  int64_t blocks = rows / blockRows;
  Value block = t.threads / 32 > blocks
                    ? arith::RemUIOp::create(t.b, t.loc, t.warp, t.idx(blocks)).getResult()
                    : t.warp;
  return t.mul(block, blockRows);
}

namespace {

/// The thread's state coordinates: (row, column) of element (mt, n, e).
struct StateLayout {
  StateLayout(ThreadContext &t, RankedTensorType type, int64_t rows)
      : t(t), mTiles(type.getDimSize(0) / 16), nTiles(type.getDimSize(1) / 8),
        base(stateRowBase(t, rows, type.getDimSize(0))) {}
  ThreadContext &t;
  int64_t mTiles, nTiles;
  Value base;
  int64_t index(int64_t mt, int64_t n, int64_t e) const { return (mt * nTiles + n) * 4 + e; }
  Value row(int64_t mt, int64_t e) const { return t.add(t.add(base, mt * 16 + 8 * (e / 2)), t.g); }
  Value col(int64_t n, int64_t e) const { return t.add(t.mul(t.c, 2), n * 8 + e % 2); }
  template <typename Fn>
  void forEach(Fn fn) const {
    for (int64_t mt = 0; mt < mTiles; ++mt)
      for (int64_t n = 0; n < nTiles; ++n)
        for (int64_t e = 0; e < 4; ++e)
          fn(mt, n, e, index(mt, n, e));
  }
};

struct LoadStateLowering : OpConversionPattern<LoadStateOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(LoadStateOp op, OneToNOpAdaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    StateLayout s(t, op.getType(), op.getRows());
    SmallVector<Value> values(valuesPerThread(op.getType()));
    s.forEach([&](int64_t mt, int64_t n, int64_t e, int64_t at) {
      values[at] = memref::LoadOp::create(
          rw, t.loc, op.getState(),
          ValueRange{op.getB(), op.getH(), s.row(mt, e), t.add(op.getCol0(), s.col(n, e))});
    });
    rw.replaceOpWithMultiple(op, {values});
    return success();
  }
};

struct StoreStateLowering : OpConversionPattern<StoreStateOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(StoreStateOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op);
    StateLayout s(t, cast<RankedTensorType>(op.getX().getType()), op.getRows());
    ValueRange x = adaptor.getX();
    s.forEach([&](int64_t mt, int64_t n, int64_t e, int64_t at) {
      memref::StoreOp::create(
          rw, t.loc, x[at], op.getState(),
          ValueRange{op.getB(), op.getH(), s.row(mt, e), t.add(op.getCol0(), s.col(n, e))});
    });
    rw.eraseOp(op);
    return success();
  }
};

/// Pairs of columns (2c, 2c + 1) as one 16-bit vector<2> store each.
struct ShareStateLowering : OpConversionPattern<ShareStateOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(ShareStateOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    MemRefType tile = op.getTile().getType();
    ThreadContext t(rw, op.getLoc(), op, tile.getElementType());
    StateLayout s(t, cast<RankedTensorType>(op.getX().getType()), tile.getDimSize(0));
    ValueRange x = adaptor.getX();
    s.forEach([&](int64_t mt, int64_t n, int64_t e, int64_t at) {
      if (e % 2 == 0)
        vector::StoreOp::create(rw, t.loc, t.pack(x[at], x[at + 1]), op.getTile(),
                                ValueRange{s.row(mt, e), s.col(n, e)});
    });
    rw.eraseOp(op);
    return success();
  }
};

class StateUpdateEmitter {
public:
  StateUpdateEmitter(ThreadContext &t, StateUpdateOp op, ValueRange state)
      : t(t), op(op), s(t, cast<RankedTensorType>(op.getS().getType()),
                        op.getK().getType().getDimSize(1) - kSharedPad),
        S(state.begin(), state.end()) {}

  SmallVector<Value> emit() {
    Value last = op.getLast();
    Value logLast = op.getCum() ? load(op.getCum(), {last}) : Value();
    if (logLast) {
      Value decayAll = fexp(logLast);
      for (Value &x : S)
        x = t.fmul(x, decayAll);
    }
    if (op.getGate())  // row d of S decays by exp(G[last, d])
      s.forEach([&](int64_t mt, int64_t, int64_t e, int64_t at) {
        S[at] = t.fmul(S[at], fexp(load(op.getGate(), {last, s.row(mt, e)})));
      });
    int64_t rows = op.getK().getType().getDimSize(0);
    for (int64_t kt = 0; kt < rows / 16; ++kt)
      addKeyBlock(kt, logLast);
    return S;
  }

private:
  ThreadContext &t;
  StateUpdateOp op;
  StateLayout s;
  SmallVector<Value> S;

  Value load(Value memref, ValueRange at) { return memref::LoadOp::create(t.b, t.loc, memref, at); }
  Value fexp(Value x) { return math::ExpOp::create(t.b, t.loc, x); }

  /// S += (K w)^T V for the keys of 16-row block kt.
  void addKeyBlock(int64_t kt, Value logLast) {
    auto [r8, mLow, mHigh] = t.ldmatrixLanes();
    int64_t vTiles = s.nTiles - (op.getNormalize() ? 1 : 0);
    // Key weights of this thread's A-fragment columns: 2c, 2c + 1, 2c + 8, 2c + 9. Keys past
    // the end get weight 0, selected after every factor: their factors (clamped positions)
    // may overflow, and 0 * inf would poison the state.
    Value weight[4], valid[4];
    for (int64_t q4 = 0; q4 < 4; ++q4) {
      Value col = t.add(t.mul(t.c, 2), kt * 16 + (q4 / 2) * 8 + q4 % 2);
      weight[q4] = logLast ? fexp(t.fsub(logLast, load(op.getCum(), {col}))) : t.f32(1);
      if (op.getKeyScale())
        weight[q4] = t.fmul(weight[q4], load(op.getKeyScale(), {col}));
      valid[q4] = t.lt(t.add(op.getN0(), col), op.getKeysEnd());
    }
    SmallVector<SmallVector<Value, 4>> vFrag;
    for (int64_t ep = 0; ep < vTiles / 2; ++ep)
      vFrag.push_back(t.ldmatrix(op.getV(), t.add(t.add(t.mul(mLow, 8), r8), kt * 16),
                                 t.add(t.mul(mHigh, 8), ep * 16), true));
    // With norm sum, V's extra n tile: B[k][n] = 1 in column n = 0 (lanes with g = 0), else 0.
    Value isG0 = arith::CmpIOp::create(t.b, t.loc, arith::CmpIPredicate::eq, t.g, t.idx(0));
    Value one = t.select(isG0, t.f32(1), t.f32(0));
    Value ones = op.getNormalize() ? t.pack(one, one) : Value();
    for (int64_t mt = 0; mt < s.mTiles; ++mt) {
      auto kf = t.ldmatrix(op.getK(), t.add(t.add(t.mul(mHigh, 8), r8), kt * 16),
                           t.add(t.add(s.base, t.mul(mLow, 8)), mt * 16), true);
      // K~ of block c0 = 16 kt: channel d (a row of K^T) takes exp(G[last, d] - G[c0, d]).
      Value rowFactor[2];
      if (op.getGate())
        for (int64_t half = 0; half < 2; ++half) {
          Value d = t.add(t.add(s.base, mt * 16 + 8 * half), t.g);
          rowFactor[half] = fexp(t.fsub(load(op.getGate(), {op.getLast(), d}),
                                        load(op.getGate(), {t.idx(kt * 16), d})));
        }
      SmallVector<Value> a;
      for (int64_t part = 0; part < 4; ++part) {  // a0, a1: columns 2c, 2c + 1; a2, a3: + 8
        int64_t w = (part / 2) * 2;
        Value wide = arith::ExtFOp::create(t.b, t.loc, VectorType::get({2}, t.b.getF32Type()),
                                           kf[part]);
        Value y0 = t.fmul(vector::ExtractOp::create(t.b, t.loc, wide, 0), weight[w]);
        Value y1 = t.fmul(vector::ExtractOp::create(t.b, t.loc, wide, 1), weight[w + 1]);
        if (op.getGate())
          y0 = t.fmul(y0, rowFactor[part % 2]), y1 = t.fmul(y1, rowFactor[part % 2]);
        a.push_back(t.pack(t.select(valid[w], y0, t.f32(0)), t.select(valid[w + 1], y1, t.f32(0))));
      }
      for (int64_t ep = 0; ep < vTiles / 2; ++ep)
        for (int64_t half = 0; half < 2; ++half)
          accumulate(a, {vFrag[ep][2 * half], vFrag[ep][2 * half + 1]}, s.index(mt, 2 * ep + half, 0));
      if (ones)  // z += the keys' weights
        accumulate(a, {ones, ones}, s.index(mt, vTiles, 0));
    }
  }
  void accumulate(ArrayRef<Value> a, ArrayRef<Value> bf, int64_t at) {
    auto res = t.mma(a, bf, ArrayRef<Value>(S).slice(at, 4));
    for (int64_t e = 0; e < 4; ++e)
      S[at + e] = res[e];
  }
};

struct StateUpdateLowering : OpConversionPattern<StateUpdateOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult matchAndRewrite(StateUpdateOp op, OneToNOpAdaptor adaptor,
                                ConversionPatternRewriter &rw) const override {
    ThreadContext t(rw, op.getLoc(), op, op.getK().getType().getElementType());
    StateUpdateEmitter emitter(t, op, adaptor.getS());
    rw.replaceOpWithMultiple(op, {emitter.emit()});
    return success();
  }
};

} // namespace

void mlir::attn::populateStateToNVVMPatterns(FragmentTypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<LoadStateLowering, StoreStateLowering, ShareStateLowering, StateUpdateLowering>(
      converter, patterns.getContext());
}
