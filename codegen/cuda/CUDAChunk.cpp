// The CUDA kernel of attn.chunk_step (attn-chunk's chunked form of a linear recurrence): one
// block per (value-channel slice, head, batch) walks the chunks of its sequence in order. Per
// chunk, on tensor cores (mma.sync m16n8k16, f32 accumulate):
//   P   = (c_i Q K^T) * exp(g_r - g_c), masked to c <= r     (16 query rows per warp)
//   O   = c_i exp(g_r) Q S + P V                             (stored at once)
//   S   = exp(g_last) S + (K * exp(g_last - g_c))^T V        (each warp owns d / warps rows)
// where g is the chunk's cumulative log decay. A gate (per-channel decay, GLA) adds G[r, e], the
// cumulative log gates per head channel e. The K tile becomes K~ = K exp(G[c0] - G[c]) in place
// (c0 the first key of c's 16-key block); each warp scales its Q fragments by exp(G[r] - G[r0])
// (r0 its first row) and the K~ fragments of block c0 by exp(G[r0] - G[c0]). That is exact, and
// finite while a channel's gates over 15 steps multiply to more than e^-88. Q.S takes exp(G[r0])
// on S's rows; the state update exp(G[last] - G[c0]) per channel and block.
// The state S [d, bv] stays in f32 registers
// across chunks; a 16-bit copy in shared memory feeds Q S. Q, K and V tiles are double-buffered:
// chunk n + 1 streams in (cp.async) while chunk n computes. The single-step form keeps one Q
// tile, which Q(n + 1) enters once every warp holds Q(n) in registers (more blocks per SM).
#include "codegen/cuda/Passes.h"
#include "codegen/cuda/WarpKernel.h"

#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

LogicalResult mlir::attn::cudaChunkConfig(int64_t chunk, int64_t headDim, int64_t valueDim,
                                          CUDAChunkConfig &config, std::string &why,
                                          int64_t valueSlice, bool wholeRows) {
  config.rows = chunk == 1 ? 16 : chunk;  // the single-step form: one 16-row tile
  config.singleQ = chunk == 1;
  if (!llvm::is_contained({16, 32, 64, 128}, config.rows)) {
    why = "on CUDA the chunk size must be 16, 32, 64 or 128 (or 1 for a single step), got " +
          std::to_string(chunk);
    return failure();
  }
  config.warps = config.rows / 16;
  if (headDim % 16 || valueDim % 16 || headDim > 256 || valueDim > 256) {
    why = "head and value dims must be multiples of 16 up to 256, got " +
          std::to_string(headDim) + " and " + std::to_string(valueDim);
    return failure();
  }
  if (headDim % (16 * config.warps) && headDim > 16 * config.warps) {
    why = "the state's " + std::to_string(headDim) + " rows do not split over " +
          std::to_string(config.warps) + " warps of 16: use a smaller --chunk-size";
    return failure();
  }
  config.threads = 32 * config.warps;
  if (wholeRows) {  // an output rmsnorm reduces each row over the whole value dim in one warp
    if (valueDim > 128 || (valueSlice && valueSlice != valueDim)) {
      why = "an output rmsnorm needs the whole value row in one block on CUDA: a value dim up to "
            "128 and no other --value-slice, got " + std::to_string(valueDim) +
            (valueSlice ? " and " + std::to_string(valueSlice) : std::string());
      return failure();
    }
    config.valueSlice = valueDim;
    return success();
  }
  if (valueSlice) {
    if (valueSlice % 16 || valueDim % valueSlice || valueSlice > 128) {
      why = "the value slice must be a multiple of 16 up to 128 dividing the value dim " +
            std::to_string(valueDim) + ", got " + std::to_string(valueSlice);
      return failure();
    }
    config.valueSlice = valueSlice;
    return success();
  }
  // More slices mean more blocks (the grid is slices x heads x batch) and fewer registers, at
  // the price of recomputing Q K^T per slice: 32 f32 state registers per thread (bench/METHOD.md).
  int64_t budget = std::min<int64_t>(128, 32 * 32 * config.warps / headDim);
  config.valueSlice = 16;
  for (int64_t bv = 16; bv <= budget; bv += 16)
    if (valueDim % bv == 0)
      config.valueSlice = bv;
  return success();
}


namespace {

class ChunkKernelBuilder : WarpKernelBase {
public:
  ChunkKernelBuilder(OpBuilder &b, Location loc, func::FuncOp f, ChunkStepOp step,
                     gpu::GPUFuncOp kernel, CUDAChunkConfig config)
      : WarpKernelBase(b, loc, f), step(step), kernel(kernel), cfg(config) {}

  LogicalResult build();
  int64_t sharedBytes = 0;

private:
  ChunkStepOp step;
  gpu::GPUFuncOp kernel;
  CUDAChunkConfig cfg;
  Value q, k, v, out, state;  // state: the kernel's state argument, or null (zero start)
  Value kvHead, colBase, cum, keyScales;
  Value qkHead;  // the head of q and k with q/k head groups, else null
  Value gateCum;  // G [rows, d]: the chunk's cumulative log gates per head channel, or null
  Value zShared;  // norm sum: z [d], the running sum of the keys' weights (f32), or null
  Value proj;     // a projection w [m, d] (Performer): global, and its 16-bit copy in wTile
  Value wTile;
  int64_t headDim = 0, group = 1;
  int64_t rawDim = 0;  // with a projection, q's and k's head dim d (headDim is then m)

  /// With a projection: feature[r, m] = map(raw[r, :] . w[m, :], raw[r, :] . raw[r, :]) for this
  /// warp's 16 rows, on tensor cores (raw times w^T, as Q K^T); the caller's barrier publishes
  /// the tile.
  void projectTile(Value raw, Value feature, Region &map, Value rowBase, Value mLow, Value mHigh,
                   Value r8) {
    Value zero = f32(0);
    SmallVector<SmallVector<Value, 4>> a;
    Value sq[2] = {zero, zero};  // rows g and g + 8: A parts 0, 2 and 1, 3
    for (int64_t kk = 0; kk < rawDim / 16; ++kk) {
      a.push_back(ldmatrix(raw, add(add(rowBase, mul(mLow, 8)), r8), add(mul(mHigh, 8), kk * 16),
                           false));
      for (int64_t part = 0; part < 4; ++part) {
        auto [x0, x1] = unpack(a.back()[part]);
        sq[part % 2] = fadd(sq[part % 2], fadd(fmul(x0, x0), fmul(x1, x1)));
      }
    }
    for (Value &s : sq)
      s = quadReduce(s, /*isMax=*/false);
    // A loop over the 16-feature blocks (not unrolled: the map is inlined 8 times per block,
    // and an unrolled m / 16 copies of it cost compile time for nothing).
    auto loop = scf::ForOp::create(b, loc, idx(0), idx(headDim), idx(16));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value f0 = loop.getInductionVar();  // the block's first feature
    SmallVector<Value, 4> acc[2] = {{zero, zero, zero, zero}, {zero, zero, zero, zero}};
    for (int64_t kk = 0; kk < rawDim / 16; ++kk) {
      auto wf = ldmatrix(wTile, add(add(mul(mHigh, 8), r8), f0), add(mul(mLow, 8), kk * 16),
                         false);
      acc[0] = mma(a[kk], {wf[0], wf[1]}, acc[0]);
      acc[1] = mma(a[kk], {wf[2], wf[3]}, acc[1]);
    }
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t r = 0; r < 2; ++r) {  // parts 2r, 2r + 1: row g + 8r, columns 2c, 2c + 1
        Value x0 = inlineRegion(map, {acc[half][2 * r], sq[r]});
        Value x1 = inlineRegion(map, {acc[half][2 * r + 1], sq[r]});
        Value col = add(add(mul(c, 2), f0), half * 8);
        vector::StoreOp::create(b, loc, pack(x0, x1), feature,
                                ValueRange{add(add(rowBase, g), 8 * r), col});
      }
  }

  Value viewAt(Value smem, Value byteShift, Type type, int64_t rows, int64_t cols) {
    auto memType = MemRefType::get({rows, cols}, type, MemRefLayoutAttrInterface(),
                                   gpu::AddressSpaceAttr::get(b.getContext(),
                                                              gpu::AddressSpace::Workgroup));
    return memref::ViewOp::create(b, loc, memType, smem, byteShift, ValueRange{});
  }
  Value fexp(Value x) { return math::ExpOp::create(b, loc, x); }
  /// vector<2xT> -> its two f32 values.
  std::pair<Value, Value> unpack(Value x) {
    Value wide = arith::ExtFOp::create(b, loc, VectorType::get({2}, b.getF32Type()), x);
    return {vector::ExtractOp::create(b, loc, wide, 0), vector::ExtractOp::create(b, loc, wide, 1)};
  }
  /// The score's factor c_i for row position i: the score at dot = 1 (linear in dot, free of j).
  Value scoreFactor(Value i) {
    return inlineRegion(step.getScore(), {batch, head, i, idx(0), f32(1)});
  }
  /// exp(G[r, d] - G[from, d]) (from null: G = 0).
  Value gateFactor(Value r, Value from, Value d) {
    Value g = memref::LoadOp::create(b, loc, gateCum, ValueRange{r, d});
    if (from)
      g = fsub(g, memref::LoadOp::create(b, loc, gateCum, ValueRange{from, d}));
    return fexp(g);
  }
  /// exp(G[row, d..d+1] - G[from, d..d+1]) (from null: G = 0), from one 8-byte load of each G
  /// pair (d is even).
  std::pair<Value, Value> gatePair(Value row, Value from, Value d) {
    auto pair = VectorType::get({2}, b.getF32Type());
    Value g = vector::LoadOp::create(b, loc, pair, gateCum, ValueRange{row, d});
    if (from)
      g = arith::SubFOp::create(b, loc, g,
                                vector::LoadOp::create(b, loc, pair, gateCum, ValueRange{from, d}));
    return {fexp(vector::ExtractOp::create(b, loc, g, 0)),
            fexp(vector::ExtractOp::create(b, loc, g, 1))};
  }
  Value scalePair(Value x, std::pair<Value, Value> f) { return scalePair(x, f.first, f.second); }
  /// The K tile (after its feature map) -> K~ = K exp(G[c0] - G[c]) in place, c0 the first key
  /// of c's 16-key block, 8 channels per thread and step; then a barrier.
  void gateKeys(Value kBuf, Value tid) {
    int64_t perRow = headDim / 8;
    auto f8 = VectorType::get({8}, b.getF32Type());
    forEachChunk(cfg.rows * perRow, tid, cfg.threads, [&](Value id) {
      Value r = arith::DivUIOp::create(b, loc, id, idx(perRow));
      Value col = mul(arith::RemUIOp::create(b, loc, id, idx(perRow)), 8);
      Value r0 = mul(arith::DivUIOp::create(b, loc, r, idx(16)), 16);
      Value k8 =
          vector::LoadOp::create(b, loc, VectorType::get({8}, elt), kBuf, ValueRange{r, col});
      Value x = arith::ExtFOp::create(b, loc, f8, k8);
      Value gc = vector::LoadOp::create(b, loc, f8, gateCum, ValueRange{r, col});
      Value g0 = vector::LoadOp::create(b, loc, f8, gateCum, ValueRange{r0, col});
      Value diff = arith::SubFOp::create(b, loc, g0, gc);
      SmallVector<Value> scaled;
      for (int64_t e = 0; e < 8; ++e)
        scaled.push_back(fmul(vector::ExtractOp::create(b, loc, x, e),
                              fexp(vector::ExtractOp::create(b, loc, diff, e))));
      Value y = vector::FromElementsOp::create(b, loc, f8, scaled);
      vector::StoreOp::create(b, loc, arith::TruncFOp::create(b, loc, VectorType::get({8}, elt), y),
                              kBuf, ValueRange{r, col});
    });
    gpu::BarrierOp::create(b, loc);
  }
  /// x (vector<2xT>, channels d, d + 1 of one row) times (f0, f1), re-packed.
  Value scalePair(Value x, Value f0, Value f1) {
    auto [lo, hi] = unpack(x);
    return pack(fmul(lo, f0), fmul(hi, f1));
  }
  /// G[r, d] = log gate(n0) + ... + log gate(n0 + r) per channel d: a thread per channel walks
  /// the rows (positions past the queries clamped, as logDecay does). Barriers around. (Computing
  /// every log gate first, in parallel, then summing in shared memory measured slower: 1.51 ms
  /// against 1.23 for GLA, bench/METHOD.md.)
  void scanLogGates(Value n0, Value tid) {
    gpu::BarrierOp::create(b, loc);
    forEachChunk(headDim, tid, cfg.threads, [&](Value d) {
      auto loop = scf::ForOp::create(b, loc, idx(0), idx(cfg.rows), idx(1), ValueRange{f32(0)});
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value r = loop.getInductionVar();
      Value p = minIdx(add(n0, r), add(qLen, idx(-1)));
      Value gate = inlineRegion(step.getGate(), {batch, head, p, d});
      Value sum = fadd(loop.getRegionIterArgs()[0], math::LogOp::create(b, loc, gate));
      memref::StoreOp::create(b, loc, sum, gateCum, ValueRange{r, d});
      scf::YieldOp::create(b, loc, sum);
    });
    gpu::BarrierOp::create(b, loc);
  }

  /// cum[r] = log gamma(p0) + ... + log gamma(p0 + r) for r < n (n a multiple of 16 up to 128),
  /// by warp 0 in log steps: each lane sums n / 32 consecutive logs (or one), a shuffle scan
  /// over the lanes adds the sums of the lanes before it. Barriers before (earlier readers of
  /// cum are done) and after.
  void scanLogDecays(Value cum, Value p0, int64_t n, Value tid) {
    gpu::BarrierOp::create(b, loc);
    int64_t per = std::max<int64_t>(1, n / 32), lanes = n / per;
    auto inWarp0 = scf::IfOp::create(b, loc,
                                     arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, warp,
                                                           idx(0)),
                                     /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(inWarp0.thenBlock()->getTerminator());
      Value first = mul(lane, per);
      SmallVector<Value> prefix;  // within the lane
      Value sum = f32(0);
      for (int64_t e = 0; e < per; ++e) {
        sum = fadd(sum, logDecay(add(add(p0, first), e)));
        prefix.push_back(sum);
      }
      Value total = sum;
      for (int32_t offset = 1; offset < 32; offset *= 2) {
        auto up = gpu::ShuffleOp::create(b, loc, total, offset, 32, gpu::ShuffleMode::UP);
        total = fadd(total, select(up.getValid(), up.getShuffleResult(), f32(0)));
      }
      Value before = fsub(total, sum);  // the lanes below this one
      auto store = scf::IfOp::create(b, loc, lt(lane, idx(lanes)), /*withElseRegion=*/false);
      b.setInsertionPoint(store.thenBlock()->getTerminator());
      for (int64_t e = 0; e < per; ++e)
        memref::StoreOp::create(b, loc, fadd(before, prefix[e]), cum,
                                ValueRange{add(first, e)});
    }
    gpu::BarrierOp::create(b, loc);
  }

  /// keyScales[r] = the score's key factor of position n0 + r, 0 past the keys that count
  /// (below keysEnd: its params may end at kv_len), by one thread per row. Readers of the
  /// previous chunk's factors are past a barrier; the caller's next barrier publishes them.
  void computeKeyScales(Value n0, Value keysEnd, Value tid) {
    forEachChunk(cfg.rows, tid, cfg.threads, [&](Value r) {
      Value p = add(n0, r);
      auto ifOp = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()}, lt(p, keysEnd),
                                    /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        scf::YieldOp::create(b, loc, inlineRegion(step.getKeyScale(), {batch, head, p}));
        b.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(b, loc, f32(0));
      }
      memref::StoreOp::create(b, loc, ifOp.getResult(0), keyScales, ValueRange{r});
    });
  }
  /// The key factor of chunk row r (1 without one).
  Value keyScaleAt(Value r) {
    return keyScales ? Value(memref::LoadOp::create(b, loc, keyScales, ValueRange{r})) : f32(1);
  }

  /// cum[r], the chunk's cumulative log decay at row r (0 without a decay).
  Value cumAt(Value r) {
    return cum ? Value(memref::LoadOp::create(b, loc, cum, ValueRange{r})) : f32(0);
  }
  /// Rows n0 .. n0 + rows - 1 of Q (qBuf) and of K and V (kBuf and vBuf, when given).
  void loadChunk(Value n0, Value qBuf, Value kBuf, Value vBuf, Value tid);
};

void ChunkKernelBuilder::loadChunk(Value n0, Value qBuf, Value kBuf, Value vBuf, Value tid) {
  auto rowsOf = [&](Value h, Value limit) {
    return [=, this](Value r) -> Row {
      Value p = add(n0, r);
      return {batch, h, p, lt(p, limit)};
    };
  };
  if (qBuf)
    loadTile(q, rowsOf(qkHead ? qkHead : head, qLen), cfg.rows, rawDim ? rawDim : headDim, qBuf,
             tid, cfg.threads);
  if (!kBuf)
    return;
  Value kvLen = memref::DimOp::create(b, loc, k, 2);
  loadTile(k, rowsOf(qkHead ? qkHead : kvHead, kvLen), cfg.rows, rawDim ? rawDim : headDim, kBuf,
           tid,
           cfg.threads);
  loadTile(v, rowsOf(kvHead, kvLen), cfg.rows, cfg.valueSlice, vBuf, tid, cfg.threads, 8,
           colBase);
}

LogicalResult ChunkKernelBuilder::build() {
  FailureOr<StepArgs> mappedArgs = mapChunkStep(step, kernel);
  if (failed(mappedArgs))
    return failure();
  q = mappedArgs->q, k = mappedArgs->k, v = mappedArgs->v, out = mappedArgs->out;
  state = mappedArgs->state;
  group = mappedArgs->group;
  elt = cast<MemRefType>(q.getType()).getElementType();
  headDim = cast<MemRefType>(q.getType()).getDimSize(3);
  if (Value w = step.getProjection()) {  // Performer: tiles of d, features and state over m
    proj = outside.lookup(w);
    rawDim = headDim;
    headDim = cast<MemRefType>(w.getType()).getDimSize(0);
  }
  const int64_t loadedDim = rawDim ? rawDim : headDim;
  decay = step.getDecay().empty() ? nullptr : &step.getDecay();

  const int64_t rows = cfg.rows, bv = cfg.valueSlice, threads = cfg.threads;
  const int64_t nTiles = rows / 8, vTiles = bv / 8, kSteps = headDim / 16;
  // Each warp owns dPerWarp rows of the state; with fewer 16-row tiles than warps, warps share
  // tiles (the same values computed and written twice).
  const int64_t dPerWarp = std::max<int64_t>(16, headDim / cfg.warps), mTiles = dPerWarp / 16;
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  lane = arith::RemUIOp::create(b, loc, tid, idx(32));
  warp = arith::DivUIOp::create(b, loc, tid, idx(32));
  g = arith::DivUIOp::create(b, loc, lane, idx(4));
  c = arith::RemUIOp::create(b, loc, lane, idx(4));
  colBase = mul(gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), bv);
  head = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  kvHead = group == 1 ? head : arith::DivUIOp::create(b, loc, head, idx(group)).getResult();
  if (int64_t qkGroup = int64_t(step.getQkGroup()); qkGroup > 1)  // q and k at h / G
    qkHead = arith::DivUIOp::create(b, loc, head, idx(qkGroup));
  qLen = memref::DimOp::create(b, loc, q, 2);
  Value kvLen = memref::DimOp::create(b, loc, k, 2);
  Value keysEnd = minIdx(kvLen, qLen);  // keys past the last query never count

  // Shared memory: two buffers of Q, K, V tiles, the 16-bit state, the cumulative decays.
  Value smem = dynamicSharedMemory();
  int64_t eb = elt.getIntOrFloatBitWidth() / 8;
  int64_t qBytes = eb * rows * (loadedDim + kSmemPad), vBytes = eb * rows * (bv + kSmemPad);
  // Q tiles first (two, or one with singleQ), then K and V of each parity.
  int64_t qTiles = cfg.singleQ ? 1 : 2, bufferBytes = qBytes + vBytes;
  auto buffers = [&](Value parity) {
    Value qAt = cfg.singleQ ? idx(0)
                            : arith::MulIOp::create(b, loc, parity, idx(qBytes)).getResult();
    Value base = add(arith::MulIOp::create(b, loc, parity, idx(bufferBytes)), qTiles * qBytes);
    return std::array<Value, 3>{viewAt(smem, qAt, elt, rows, loadedDim + kSmemPad),
                                viewAt(smem, base, elt, rows, loadedDim + kSmemPad),
                                viewAt(smem, add(base, qBytes), elt, rows, bv + kSmemPad)};
  };
  int64_t stateAt = qTiles * qBytes + 2 * bufferBytes;
  Value s16 = sharedView(smem, stateAt, headDim, bv);
  int64_t at = stateAt + eb * headDim * (bv + kSmemPad);
  Value qFeature, kFeature;  // with a projection: the chunk's Q and K feature tiles [rows, m]
  if (proj) {
    int64_t featureBytes = eb * rows * (headDim + kSmemPad);
    qFeature = sharedView(smem, at, rows, headDim);
    kFeature = sharedView(smem, at + featureBytes, rows, headDim);
    wTile = sharedView(smem, at + 2 * featureBytes, headDim, rawDim);
    at += 2 * featureBytes + eb * headDim * (rawDim + kSmemPad);
  }
  at = (at + 15) / 16 * 16;
  auto f32Shared = [&](ArrayRef<int64_t> shape) {
    auto type = MemRefType::get(shape, b.getF32Type(), MemRefLayoutAttrInterface(),
                                gpu::AddressSpaceAttr::get(b.getContext(),
                                                           gpu::AddressSpace::Workgroup));
    Value view = memref::ViewOp::create(b, loc, type, smem, idx(at), ValueRange{});
    int64_t elements = 1;
    for (int64_t x : shape)
      elements *= x;
    at = (at + 4 * elements + 15) / 16 * 16;
    return view;
  };
  if (decay)
    cum = f32Shared({rows});
  if (!step.getGate().empty())
    gateCum = f32Shared({rows, headDim});
  if (!step.getKeyScale().empty())
    keyScales = f32Shared({rows});
  if (step.getNormalize())
    zShared = f32Shared({headDim});
  sharedBytes = at;  // the launch ABI's dynamic shared memory: this layout's end

  Value m8 = arith::DivUIOp::create(b, loc, lane, idx(8));
  Value r8 = arith::RemUIOp::create(b, loc, lane, idx(8));
  Value mLow = arith::RemUIOp::create(b, loc, m8, idx(2));
  Value mHigh = arith::DivUIOp::create(b, loc, m8, idx(2));
  Value rowBase = mul(warp, 16);
  Value dBase = mul(headDim / dPerWarp < cfg.warps
                        ? arith::RemUIOp::create(b, loc, warp, idx(headDim / dPerWarp)).getResult()
                        : warp,
                    dPerWarp);

  // The state fragment of this thread: m tile mt (rows dBase + 16 mt + g + 8 (e / 2)), n tile n
  // (columns 8 n + 2 c + e % 2 of the slice).
  auto stateRow = [&](int64_t mt, int64_t e) { return add(add(dBase, mt * 16 + 8 * (e / 2)), g); };
  auto sliceCol = [&](int64_t n, int64_t e) { return add(mul(c, 2), n * 8 + e % 2); };
  SmallVector<Value> s0;
  for (int64_t mt = 0; mt < mTiles; ++mt)
    for (int64_t n = 0; n < vTiles; ++n)
      for (int64_t e = 0; e < 4; ++e)
        s0.push_back(state ? Value(memref::LoadOp::create(
                                 b, loc, state,
                                 ValueRange{batch, head, stateRow(mt, e),
                                            add(colBase, sliceCol(n, e))}))
                           : f32(0));
  auto storeState16 = [&](ArrayRef<Value> s) {
    for (int64_t mt = 0; mt < mTiles; ++mt)
      for (int64_t n = 0; n < vTiles; ++n)
        for (int64_t e = 0; e < 4; e += 2) {
          const Value *x = &s[(mt * vTiles + n) * 4 + e];
          vector::StoreOp::create(b, loc, pack(x[0], x[1]), s16,
                                  ValueRange{stateRow(mt, e), sliceCol(n, e)});
        }
  };
  // Norm sum: Z, the state's extra n tile [d, 8] whose column 0 is z (the others stay 0), is
  // updated with V's extra tile, 1 in column 0 (ones below); its rows are stateRow's.
  const int64_t zCount = zShared ? mTiles * 4 : 0;
  Value isG0 = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, g, idx(0));
  Value isC0 = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, c, idx(0));
  auto storeZ = [&](ArrayRef<Value> z) {  // column 0: threads c = 0, parts 0 and 2
    if (!zShared)
      return;
    auto ifOp = scf::IfOp::create(b, loc, isC0, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    for (int64_t mt = 0; mt < mTiles; ++mt)
      for (int64_t e = 0; e < 4; e += 2)
        memref::StoreOp::create(b, loc, z[mt * 4 + e], zShared, ValueRange{stateRow(mt, e)});
  };
  for (int64_t x = 0; x < zCount; ++x)
    s0.push_back(f32(0));
  storeState16(ArrayRef<Value>(s0).take_front(s0.size() - zCount));
  storeZ(ArrayRef<Value>(s0).take_back(zCount));
  if (proj)  // w [m, d] in 16 bits, once (the first chunk's barrier publishes it)
    forEachChunk(headDim * rawDim, tid, threads, [&](Value id) {
      Value m = arith::DivUIOp::create(b, loc, id, idx(rawDim));
      Value d = arith::RemUIOp::create(b, loc, id, idx(rawDim));
      Value x = memref::LoadOp::create(b, loc, proj, ValueRange{m, d});
      if (x.getType() != elt)
        x = x.getType().getIntOrFloatBitWidth() > elt.getIntOrFloatBitWidth()
                ? arith::TruncFOp::create(b, loc, elt, x).getResult()
                : arith::ExtFOp::create(b, loc, elt, x).getResult();
      memref::StoreOp::create(b, loc, x, wTile, ValueRange{m, d});
    });
  {
    auto [qb, kb, vb] = buffers(idx(0));
    loadChunk(idx(0), qb, kb, vb, tid);
    commit();
  }

  auto loop = scf::ForOp::create(b, loc, idx(0), qLen, idx(rows), s0);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value n0 = loop.getInductionVar();
    SmallVector<Value> S(loop.getRegionIterArgs().begin(), loop.getRegionIterArgs().end());
    SmallVector<Value> Z(S.end() - zCount, S.end());
    S.truncate(S.size() - zCount);
    Value parity = arith::RemUIOp::create(
        b, loc, arith::DivUIOp::create(b, loc, n0, idx(rows)), idx(2));
    auto [qBuf, kBuf, vBuf] = buffers(parity);
    Value qNext;
    {  // the next chunk streams into the other buffer (read two chunks ago: past a barrier)
      auto [qn, kn, vn] = buffers(arith::SubIOp::create(b, loc, idx(1), parity));
      qNext = qn;
      loadChunk(add(n0, rows), cfg.singleQ ? Value() : qn, kn, vn, tid);
    }
    waitGroups(commit(), 1);  // this chunk has landed: Q(n) and K, V(n) (all but the newest group)
    // The Q and K tiles the chunk computes with: the loaded ones, mapped in place, or with a
    // projection the feature tiles (each warp projects its 16 rows of both).
    Value qTile = qBuf, kTile = kBuf;
    if (proj) {
      projectTile(qBuf, qFeature, step.getFeatureQ(), rowBase, mLow, mHigh, r8);
      projectTile(kBuf, kFeature, step.getFeatureK(), rowBase, mLow, mHigh, r8);
      gpu::BarrierOp::create(b, loc);
      qTile = qFeature, kTile = kFeature;
    } else {
      if (!step.getFeatureQ().empty())
        mapTile(qBuf, step.getFeatureQ(), rows, headDim, tid, threads);
        gpu::BarrierOp::create(b, loc);
      if (!step.getFeatureK().empty())
        mapTile(kBuf, step.getFeatureK(), rows, headDim, tid, threads);
        gpu::BarrierOp::create(b, loc);
    }
    if (keyScales) {
      computeKeyScales(n0, keysEnd, tid);
      if (!cum && !gateCum)  // otherwise their scans' barriers publish the factors
        gpu::BarrierOp::create(b, loc);
    }
    if (cum)
      scanLogDecays(cum, n0, rows, tid);
    if (gateCum) {
      scanLogGates(n0, tid);
      gateKeys(kTile, tid);
    }

    // Per thread row r (g, g + 8 of the warp's 16): position, c_i, and g_r.
    Value rowLocal[2], rowPos[2], factor[2], logRow[2];
    for (int r = 0; r < 2; ++r) {
      rowLocal[r] = add(add(rowBase, g), 8 * r);
      rowPos[r] = add(n0, rowLocal[r]);
      factor[r] = scoreFactor(minIdx(rowPos[r], add(qLen, idx(-1))));
      logRow[r] = cumAt(rowLocal[r]);
    }
    SmallVector<SmallVector<Value, 4>> qFrag;
    for (int64_t kk = 0; kk < kSteps; ++kk)
      qFrag.push_back(ldmatrix(qTile, add(add(rowBase, mul(mLow, 8)), r8),
                               add(mul(mHigh, 8), kk * 16), false));
    if (cfg.singleQ) {
      gpu::BarrierOp::create(b, loc);  // every warp holds Q(n): Q(n + 1) may land in the tile
      loadChunk(add(n0, rows), qNext, Value(), Value(), tid);
      commit();
    }
    // The channels d of this thread's fragment registers in k step kk: part p holds d and
    // d + 1 with d = 16 kk + 2c (+ 8 for parts 2 and 3 of A, part 1 of B).
    auto channel = [&](int64_t kk, int64_t high) { return add(mul(c, 2), kk * 16 + 8 * high); };
    if (gateCum)  // q~ = q exp(G[r] - G[r0]): A parts 0, 2 are row g, parts 1, 3 row g + 8
      for (int64_t kk = 0; kk < kSteps; ++kk)
        for (int64_t part = 0; part < 4; ++part) {
          Value row = rowLocal[part % 2], d = channel(kk, part / 2);
          qFrag[kk][part] = scalePair(qFrag[kk][part], gatePair(row, rowBase, d));
        }
    // P = Q K^T, masked to c <= r and keys below kv_len, scaled by c_i exp(g_r - g_c).
    Value zero = f32(0);
    SmallVector<SmallVector<Value, 4>> p(nTiles, SmallVector<Value, 4>(4, zero));
    for (int64_t kk = 0; kk < kSteps; ++kk)
      for (int64_t np = 0; np < nTiles / 2; ++np) {
        auto kf = ldmatrix(kTile, add(add(mul(mHigh, 8), r8), np * 16),
                           add(mul(mLow, 8), kk * 16), false);
        if (gateCum) {  // K~ of block c0 = 16 np times exp(G[r0] - G[c0]); parts 1, 3 are d + 8
          std::pair<Value, Value> f[2] = {gatePair(rowBase, idx(np * 16), channel(kk, 0)),
                                          gatePair(rowBase, idx(np * 16), channel(kk, 1))};
          for (int64_t part = 0; part < 4; ++part)
            kf[part] = scalePair(kf[part], f[part % 2]);
        }
        p[2 * np] = mma(qFrag[kk], {kf[0], kf[1]}, p[2 * np]);
        p[2 * np + 1] = mma(qFrag[kk], {kf[2], kf[3]}, p[2 * np + 1]);
      }
    for (int64_t n = 0; n < nTiles; ++n)
      for (int64_t e = 0; e < 4; ++e) {
        int r = int(e / 2);
        Value col = add(mul(c, 2), n * 8 + e % 2);
        Value allowed = arith::AndIOp::create(
            b, loc,
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, col, rowLocal[r]),
            lt(add(n0, col), kvLen));
        Value w = factor[r];
        if (keyScales)
          w = fmul(w, keyScaleAt(col));
        if (cum)
          w = fmul(w, fexp(fsub(logRow[r], cumAt(col))));
        p[n][e] = select(allowed, fmul(p[n][e], w), zero);
      }
    // O = c_i exp(g_r) Q S + P V.
    SmallVector<SmallVector<Value, 4>> acc(vTiles, SmallVector<Value, 4>(4, zero));
    for (int64_t kk = 0; kk < kSteps; ++kk) {
      // q exp(G[r]) S = q~ (exp(G[r0]) S): parts 0, 2 are channels d, parts 1, 3 d + 8
      std::pair<Value, Value> f[2];
      if (gateCum)
        f[0] = gatePair(rowBase, Value(), channel(kk, 0)),
        f[1] = gatePair(rowBase, Value(), channel(kk, 1));
      for (int64_t ep = 0; ep < vTiles / 2; ++ep) {
        auto sf = ldmatrix(s16, add(add(mul(mLow, 8), r8), kk * 16),
                           add(mul(mHigh, 8), ep * 16), true);
        if (gateCum)
          for (int64_t part = 0; part < 4; ++part)
            sf[part] = scalePair(sf[part], f[part % 2]);
        acc[2 * ep] = mma(qFrag[kk], {sf[0], sf[1]}, acc[2 * ep]);
        acc[2 * ep + 1] = mma(qFrag[kk], {sf[2], sf[3]}, acc[2 * ep + 1]);
      }
    }
    Value rowScale[2];
    for (int r = 0; r < 2; ++r)
      rowScale[r] = cum ? fmul(factor[r], fexp(logRow[r])) : factor[r];
    for (auto &tile : acc)
      for (int64_t e = 0; e < 4; ++e)
        tile[e] = fmul(tile[e], rowScale[e / 2]);
    // P as the A operand of each 16-key block kt, packed as P.V reaches it (kept for P.1 with
    // norm sum).
    SmallVector<SmallVector<Value>> pBlocks;
    for (int64_t kt = 0; kt < rows / 16; ++kt) {
      pBlocks.push_back({pack(p[2 * kt][0], p[2 * kt][1]), pack(p[2 * kt][2], p[2 * kt][3]),
                         pack(p[2 * kt + 1][0], p[2 * kt + 1][1]),
                         pack(p[2 * kt + 1][2], p[2 * kt + 1][3])});
      ArrayRef<Value> pA = pBlocks.back();
      for (int64_t ep = 0; ep < vTiles / 2; ++ep) {
        auto vf = ldmatrix(vBuf, add(add(mul(mLow, 8), r8), kt * 16),
                           add(mul(mHigh, 8), ep * 16), true);
        acc[2 * ep] = mma(pA, {vf[0], vf[1]}, acc[2 * ep]);
        acc[2 * ep + 1] = mma(pA, {vf[2], vf[3]}, acc[2 * ep + 1]);
      }
    }
    // V's extra tile for Z: B[k][n] = 1 in column n = 0 (lanes with g = 0), else 0.
    Value ones = pack(select(isG0, f32(1), zero), select(isG0, f32(1), zero));
    if (zShared) {  // each row's weight sum: c_i exp(g_r) Q z + P 1, in column 0 of a tile
      SmallVector<Value, 4> den(4, zero);
      for (int64_t kk = 0; kk < kSteps; ++kk) {
        Value zb[2];  // B[k][0] = z[16 kk + k] (g = 0); parts 0 and 1: k = 2c, 2c + 1 (+ 8)
        for (int64_t high = 0; high < 2; ++high) {
          Value d = channel(kk, high);
          Value z0 = memref::LoadOp::create(b, loc, zShared, ValueRange{d});
          Value z1 = memref::LoadOp::create(b, loc, zShared, ValueRange{add(d, 1)});
          zb[high] = pack(select(isG0, z0, zero), select(isG0, z1, zero));
          if (gateCum)
            zb[high] = scalePair(zb[high], gatePair(rowBase, Value(), d));
        }
        den = mma(qFrag[kk], {zb[0], zb[1]}, den);
      }
      for (int64_t e = 0; e < 4; ++e)
        den[e] = fmul(den[e], rowScale[e / 2]);
      for (ArrayRef<Value> pA : pBlocks)
        den = mma(pA, {ones, ones}, den);
      for (int r = 0; r < 2; ++r) {  // column 0 is lane c = 0's; the quad's others hold 0
        Value sum = quadReduce(den[2 * r], /*isMax=*/false);
        Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, sum, zero);
        Value inverse = arith::DivFOp::create(b, loc, f32(1), select(none, f32(1), sum));
        Value scale = select(none, zero, inverse);
        for (auto &tile : acc)
          for (int64_t e = 2 * r; e < 2 * r + 2; ++e)
            tile[e] = fmul(tile[e], scale);
      }
    }
    if (auto eps = step.getRmsEps()) {  // the quad holds its rows' whole value dim (one slice)
      for (int r = 0; r < 2; ++r) {
        Value squares = zero;
        for (auto &tile : acc)
          for (int64_t e = 2 * r; e < 2 * r + 2; ++e)
            squares = fadd(squares, fmul(tile[e], tile[e]));
        Value mean = fmul(quadReduce(squares, /*isMax=*/false), f32(1.0 / double(bv)));
        Value scale = math::RsqrtOp::create(b, loc, fadd(mean, f32(eps->convertToFloat())));
        for (auto &tile : acc)
          for (int64_t e = 2 * r; e < 2 * r + 2; ++e)
            tile[e] = fmul(tile[e], scale);
      }
    }
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    for (int r = 0; r < 2; ++r) {
      auto ifOp = scf::IfOp::create(b, loc, lt(rowPos[r], qLen), /*withElse=*/false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      for (int64_t n = 0; n < vTiles; ++n)
        for (int64_t e = 2 * r; e < 2 * r + 2; ++e) {
          Value x = acc[n][e];
          if (!step.getSkip().empty()) {  // + skip(b, h, i, e, v[i, e]): V(n)'s row i is here
            Value col = sliceCol(n, e);
            Value vAt = arith::ExtFOp::create(
                b, loc, b.getF32Type(),
                memref::LoadOp::create(b, loc, vBuf, ValueRange{rowLocal[r], col}).getResult());
            x = fadd(x, inlineRegion(step.getSkip(),
                                     {batch, head, rowPos[r], add(colBase, col), vAt}));
          }
          if (outElt != x.getType())
            x = arith::TruncFOp::create(b, loc, outElt, x);
          memref::StoreOp::create(b, loc, x, out,
                                  ValueRange{batch, head, rowPos[r], add(colBase, sliceCol(n, e))});
        }
    }

    // S = exp(g_last) S + (K * exp(g_last - g_c))^T V over the keys below min(kv_len, q_len).
    Value last = add(minIdx(idx(rows), arith::SubIOp::create(b, loc, qLen, n0)), idx(-1));
    Value logLast = cumAt(last);
    if (cum) {
      Value decayAll = fexp(logLast);
      for (Value &x : S)
        x = fmul(x, decayAll);
      for (Value &x : Z)
        x = fmul(x, decayAll);
    }
    if (gateCum) {  // row d of S (and of Z) decays by exp(G[last, d])
      for (int64_t mt = 0; mt < mTiles; ++mt)
        for (int64_t n = 0; n < vTiles; ++n)
          for (int64_t e = 0; e < 4; ++e) {
            Value &x = S[(mt * vTiles + n) * 4 + e];
            x = fmul(x, gateFactor(last, Value(), stateRow(mt, e)));
          }
      for (int64_t x = 0; x < zCount; ++x)
        Z[x] = fmul(Z[x], gateFactor(last, Value(), stateRow(x / 4, x % 4)));
    }
    for (int64_t kt = 0; kt < rows / 16; ++kt) {
      // Key weights of this thread's A-fragment columns: 2c, 2c + 1, 2c + 8, 2c + 9.
      // Keys past the chunk's last row get weight 0, selected after every factor: their
      // factors (clamped positions) may overflow, and 0 * inf would poison the state.
      Value weight[4], valid[4];
      for (int64_t q4 = 0; q4 < 4; ++q4) {
        Value col = add(mul(c, 2), kt * 16 + (q4 / 2) * 8 + q4 % 2);
        weight[q4] = cum ? fexp(fsub(logLast, cumAt(col))) : f32(1);
        if (keyScales)
          weight[q4] = fmul(weight[q4], keyScaleAt(col));
        valid[q4] = lt(add(n0, col), keysEnd);
      }
      SmallVector<SmallVector<Value, 4>> vFrag;
      for (int64_t ep = 0; ep < vTiles / 2; ++ep)
        vFrag.push_back(ldmatrix(vBuf, add(add(mul(mLow, 8), r8), kt * 16),
                                 add(mul(mHigh, 8), ep * 16), true));
      for (int64_t mt = 0; mt < mTiles; ++mt) {
        auto kf = ldmatrix(kTile, add(add(mul(mHigh, 8), r8), kt * 16),
                           add(add(dBase, mul(mLow, 8)), mt * 16), true);
        // K~ of block c0 = 16 kt: channel d (row of K^T) takes exp(G[last, d] - G[c0, d]).
        Value rowFactor[2];
        if (gateCum)
          for (int64_t half = 0; half < 2; ++half)
            rowFactor[half] = gateFactor(last, idx(kt * 16),
                                         add(add(dBase, mt * 16 + 8 * half), g));
        SmallVector<Value> a;
        for (int64_t part = 0; part < 4; ++part) {  // a0, a1: columns 2c, 2c+1; a2, a3: + 8
          int64_t w = (part / 2) * 2;
          auto [x0, x1] = unpack(kf[part]);
          Value y0 = fmul(x0, weight[w]), y1 = fmul(x1, weight[w + 1]);
          if (gateCum)
            y0 = fmul(y0, rowFactor[part % 2]), y1 = fmul(y1, rowFactor[part % 2]);
          // selected last: a clamped key's factors may overflow, and 0 * inf is NaN
          a.push_back(pack(select(valid[w], y0, zero), select(valid[w + 1], y1, zero)));
        }
        for (int64_t ep = 0; ep < vTiles / 2; ++ep)
          for (int64_t half = 0; half < 2; ++half) {
            int64_t at = (mt * vTiles + 2 * ep + half) * 4;
            auto res = mma(a, {vFrag[ep][2 * half], vFrag[ep][2 * half + 1]},
                           ArrayRef<Value>(S).slice(at, 4));
            for (int64_t e = 0; e < 4; ++e)
              S[at + e] = res[e];
          }
        if (zCount) {  // z += the keys' weights: V's extra tile of ones
          auto res = mma(a, {ones, ones}, ArrayRef<Value>(Z).slice(mt * 4, 4));
          for (int64_t e = 0; e < 4; ++e)
            Z[mt * 4 + e] = res[e];
        }
      }
    }
    gpu::BarrierOp::create(b, loc);  // every warp is done with this chunk's tiles and S16
    storeState16(S);
    storeZ(Z);
    SmallVector<Value> carried(S);
    carried.append(Z.begin(), Z.end());
    scf::YieldOp::create(b, loc, carried);
  }
  nvgpu::DeviceAsyncWaitOp::create(b, loc, commit(), b.getI32IntegerAttr(0));
  if (state) {
    auto S = loop.getResults();
    for (int64_t mt = 0; mt < mTiles; ++mt)
      for (int64_t n = 0; n < vTiles; ++n)
        for (int64_t e = 0; e < 4; ++e)
          memref::StoreOp::create(
              b, loc, S[(mt * vTiles + n) * 4 + e], state,
              ValueRange{batch, head, stateRow(mt, e), add(colBase, sliceCol(n, e))});
  }
  gpu::ReturnOp::create(b, loc);
  return success();
}

} // namespace

LogicalResult mlir::attn::buildChunkKernel(OpBuilder &b, func::FuncOp f, ChunkStepOp step,
                                           gpu::GPUFuncOp kernel, int64_t valueSlice) {
  auto q = step.getQ().getType();
  Type elt = q.getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return step.emitError() << "the CUDA back end takes f16 or bf16 q, k, v (got " << elt
                            << "); compile with --dtype=bf16";
  // A gate scales each key row in the 16-bit K tile by exp(G[c0] - G[c]) over up to 15 steps:
  // finite in bf16 (to e^88) but not in f16 (to e^11), where GLA's gates overflow to inf/NaN.
  if (!step.getGate().empty() && elt.isF16())
    return step.emitError("on CUDA a gate (a per-channel decay) needs bf16 q, k, v: the gated "
                          "key tile would overflow f16's range; compile with --dtype=bf16");
  int64_t d = q.getDimSize(3), dv = step.getOut().getType().getDimSize(3);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return step.emitError("the CUDA back end needs static head and value dims: declare them "
                          "(d = 128) or pass --set d=128");
  if (Value w = step.getProjection()) {  // Performer: q and k tiles of d, the rest over m
    int64_t m = cast<MemRefType>(w.getType()).getDimSize(0);
    if (m % 16 || m > 256 || d % 16 || d > 256)  // m is static (the verifier)
      return step.emitError() << "on CUDA a projected feature map needs static head and feature "
                                 "dims that are multiples of 16 up to 256, got "
                              << d << " and " << m;
    d = m;
  }
  CUDAChunkConfig config;
  std::string why;
  if (failed(cudaChunkConfig(int64_t(step.getChunk()), d, dv, config, why, valueSlice,
                             step.getRmsEps().has_value())))
    return step.emitError(why);
  kernel.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(config.threads), 1, 1}));
  b.setInsertionPointToStart(&kernel.getBody().front());
  ChunkKernelBuilder builder(b, step.getLoc(), f, step, kernel, config);
  if (failed(builder.build()))
    return failure();
  // Grid: (value slices, q heads, batch), as extents of the output [b, h, i, dv].
  int64_t out = cast<BlockArgument>(step.getOut()).getArgNumber();
  attngpu::setLaunch(kernel, config.threads,
                     {{out, 3, 1, config.valueSlice}, {out, 1, 1, 1}, {out, 0, 1, 1}},
                     builder.sharedBytes,
                     {{"chunk", int64_t(step.getChunk())}, {"rows", config.rows},
                      {"value_slice", config.valueSlice}, {"block_q", config.rows},
                      {"block_k", config.rows}, {"warps", config.warps}});
  return success();
}
