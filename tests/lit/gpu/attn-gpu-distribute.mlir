// attn-gpu-distribute: a flash-strategy tiled function -> a kernel at the GPU tile level.
// RUN: attnc %specs/alibi.attn --emit=tiled -o %t.mlir
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_
// RUN: attnc %specs/cosine_attention.attn --emit=tiled -o %tcos.mlir
// RUN: attnc-opt %tcos.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a | FileCheck %s --check-prefix=NORMS
// RUN: attnc %specs/int8_paged_decode.attn --emit=tiled -o %tpaged.mlir
// RUN: attnc-opt %tpaged.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a | FileCheck %s --check-prefix=PAGED
// RUN: attnc %specs/unified_max_decode.attn --emit=tiled -o %tunified.mlir
// RUN: attnc-opt %tunified.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=UNIFIED
// RUN: attnc %specs/linear_elu.attn --emit=tiled --no-chunk -o %tfeature.mlir
// RUN: attnc-opt %tfeature.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=FEATURE
// RUN: attnc %S/../cuda/decay-per-step-gqa.attn --emit=tiled --no-chunk -o %tdecay.mlir
// RUN: attnc-opt %tdecay.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=DECAY
// RUN: attnc %specs/forgetting_transformer.attn --emit=tiled -o %tforget.mlir
// RUN: attnc-opt %tforget.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a | FileCheck %s --check-prefix=FORGET
// RUN: attnc %specs/alibi.attn --emit=tiled --dtype=f32 -o %tf32.mlir
// RUN: not attnc-opt %tf32.mlir --attn-gpu-select-strategy --attn-gpu-distribute 2>&1 | FileCheck %s --check-prefix=F32
// RUN: attnc %specs/alibi.attn --emit=tiled --no-online-softmax -o %t2p.mlir
// RUN: not attnc-opt %t2p.mlir --attn-gpu-select-strategy --attn-gpu-distribute 2>&1 | FileCheck %s --check-prefix=TWOPASS
// RUN: attnc %specs/causal.attn --emit=tiled -o %tdyn.mlir
// RUN: not attnc-opt %tdyn.mlir --attn-gpu-select-strategy --attn-gpu-distribute 2>&1 | FileCheck %s --check-prefix=DYN
// RUN: attnc-opt %t.mlir --attn-gpu-select-strategy --attn-gpu-distribute="chip=sm_90a overlap=true" | FileCheck %s --check-prefix=OVERLAP
// RUN: attnc %specs/mha.attn --emit=tiled -o %tmha.mlir
// RUN: attnc-opt %tmha.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=SCALE
// RUN: attnc %specs/sigmoid.attn --emit=tiled -o %tsig.mlir
// RUN: attnc-opt %tsig.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=SIGMOID
// RUN: attnc %specs/alibi.attn --emit=tiled --block-q=48 -o %t48.mlir
// RUN: not attnc-opt %t48.mlir --attn-gpu-select-strategy --attn-gpu-distribute 2>&1 | FileCheck %s --check-prefix=BQ

// ALiBi, causal, bf16, d = 128, split-KV: 64 query rows (4 warps) x 32 keys.
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @alibi_kernels [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// The launch ABI: grid x = ceil(q_len / 64) query tiles (times the splits), y = heads, z = batch;
// the tile sizes the manifest reports.
// CHECK: gpu.func @alibi(%[[Q:[a-z0-9]+]]: memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>, {{.*}}) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 2 * 1 ceil_div 64>, <arg 0 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>], shared_memory = 0, splits = true, schedule = {block_k = 32 : i64, block_q = 64 : i64, warps = 4 : i64}>, known_block_size = array<i32: 128, 1, 1>}
// CHECK-DAG: gpu.block_id  x
// CHECK-DAG: gpu.block_id  y
// CHECK-DAG: gpu.block_id  z
// CHECK: %[[QT:.*]] = attn_gpu.alloc_shared : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[KT:.*]] = attn_gpu.alloc_shared : memref<32x136xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[VT:.*]] = attn_gpu.alloc_shared : memref<32x136xbf16, #gpu.address_space<workgroup>>
// The Q tile, waited for (copies are synchronous here: attn-gpu-pipeline overlaps them); Q's A
// fragments once.
// CHECK: attn_gpu.copy_query_tile %[[Q]][{{.*}}] -> %[[QT]]
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK: %[[QA:.*]] = attn_gpu.load_operand %[[QT]]
// The key loop carries m, l (rows) and the accumulator.
// CHECK: scf.for %[[J0:.*]] = {{.*}} iter_args(%[[M:.*]] = %{{.*}}, %[[L:.*]] = %{{.*}}, %[[ACC:.*]] = %{{.*}}) -> (tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64xf32, #attn_gpu.frag<rows>>, tensor<64x128xf32, #attn_gpu.frag<acc>>)
// CHECK: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[J0]]] below %{{.*}} -> %[[KT]]
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK: gpu.barrier
// CHECK: %[[S:.*]] = attn_gpu.mma %[[QA]], %[[KT]], %{{.*}} {transpose_b}
// CHECK: %[[SC:.*]] = attn_gpu.score %[[S]]{{.*}} {fill = 0xFF800000 : f32}
// CHECK: arith.cmpi sle
// The online-softmax update, step by step: m' = max(m, rowmax s) ...
// CHECK: %[[RM:.*]] = attn_gpu.row_reduce <max> %[[SC]]
// CHECK: %[[QM:.*]] = attn_gpu.quad_reduce <max> %[[RM]]
// CHECK: %[[MX:.*]] = arith.maximumf %[[M]], %[[QM]]
// ... a row with no allowed key uses base 0 ...
// CHECK: %[[NOKEY:.*]] = arith.cmpf oeq, %[[MX]], %{{.*}}
// CHECK: %[[B0:.*]] = arith.select %[[NOKEY]], %{{.*}}, %[[MX]]
// CHECK: %[[BASE:.*]] = arith.mulf %[[B0]], %{{.*}}
// ... alpha = 2^(m log2e - base) ...
// CHECK: %[[ML:.*]] = arith.mulf %[[M]], %{{.*}}
// CHECK: %[[AD:.*]] = arith.subf %[[ML]], %[[BASE]]
// CHECK: %[[ALPHA:.*]] = math.exp2 %[[AD]]
// ... p = 2^(s log2e - base) ...
// CHECK: %[[BB:.*]] = attn_gpu.broadcast_rows %[[BASE]]
// CHECK: %[[SL:.*]] = arith.mulf %[[SC]], %{{.*}}
// CHECK: %[[SD:.*]] = arith.subf %[[SL]], %[[BB]]
// CHECK: %[[P:.*]] = math.exp2 %[[SD]]
// ... l' = l alpha + rowsum p (per thread), acc' = acc alpha.
// CHECK: %[[RS:.*]] = attn_gpu.row_reduce <sum> %[[P]]
// CHECK: %[[LA:.*]] = arith.mulf %[[L]], %[[ALPHA]]
// CHECK: %[[L1:.*]] = arith.addf %[[LA]], %[[RS]]
// CHECK: %[[AB:.*]] = attn_gpu.broadcast_rows %[[ALPHA]]
// CHECK: %[[ACC1:.*]] = arith.mulf %[[ACC]], %[[AB]]
// P feeds the second matmul, after the V tile.
// CHECK: %[[PA:.*]] = attn_gpu.to_operand %[[P]]
// CHECK: attn_gpu.copy_key_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[J0]]] below %{{.*}} -> %[[VT]]
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK: %[[ACC2:.*]] = attn_gpu.mma %[[PA]], %[[VT]], %[[ACC1]]
// Every warp is done with both tiles before the next iteration's copies.
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: scf.yield %[[MX]], %[[L1]], %[[ACC2]]
// Epilogue: l over the quad, out = acc / l, lse = m + ln l; partials when there are splits.
// CHECK: attn_gpu.quad_reduce <sum>
// CHECK: math.log2
// CHECK: scf.if
// CHECK: attn_gpu.store_tile {{.*}} split
// CHECK: attn_gpu.store_rows {{.*}} split
// CHECK: } else {
// CHECK: attn_gpu.store_tile
// CHECK: attn_gpu.store_rows
// CHECK: gpu.return
// The combine kernel: blocks of 16 rows i, then h, b (of the partial buffer).
// CHECK: gpu.func @alibi_combine({{.*}}) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 0 dim 3 * 1 ceil_div 16>, <arg 0 dim 2 * 1 ceil_div 1>, <arg 0 dim 1 * 1 ceil_div 1>], shared_memory = 0, splits = false>
// CHECK: attn.combine

// Paged int8 K/V with GQA packing (4 query heads per tile row group): y counts kv heads (k's
// dim 1), x counts q_len * 4 rows; quantised tiles land in staging tiles, then dequantise.
// PAGED: gpu.module @int8_paged_decode_kernels [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// PAGED: grid = [<arg 0 dim 2 * 4 ceil_div 64>, <arg 1 dim 1 * 1 ceil_div 1>, <arg 0 dim 0 * 1 ceil_div 1>]
// PAGED-NOT: min_blocks
// PAGED: %[[KS:.*]] = attn_gpu.alloc_shared : memref<{{[0-9]+}}x128xi8, #gpu.address_space<workgroup>>
// PAGED: attn_gpu.copy_query_tile {{.*}} {pack = 4 : i64}
// PAGED: scf.for
// PAGED: attn_gpu.copy_key_tile {{.*}} pages %{{.*}} -> %[[KS]] {page_size = 16 : i64}
// PAGED: attn_gpu.dequantize %[[KS]] -> {{.*}} scale
// PAGED: gpu.barrier
// PAGED: attn_gpu.score {{.*}} {fill = 0xFF800000 : f32, pack = 4 : i64}

// FlashDecoding++'s unified max: one warp vote picks the update without max and rescale.
// UNIFIED: %[[HI:.*]] = attn_gpu.row_reduce <max>
// UNIFIED: %[[LO:.*]] = attn_gpu.row_reduce <min>
// UNIFIED: %[[ALL:.*]] = attn_gpu.vote_all
// UNIFIED: scf.if %[[ALL]] -> (tensor<{{.*}}>, tensor<{{.*}}>, tensor<{{.*}}>, tensor<{{.*}}>)
// UNIFIED: } else {
// UNIFIED: attn_gpu.quad_reduce <max>
// UNIFIED: attn_gpu.quad_reduce <sum>

// Linear attention's feature maps in the quadratic form: on Q once, on each K tile.
// FEATURE: attn_gpu.copy_query_tile
// FEATURE: attn_gpu.map_tile
// FEATURE: scf.for
// FEATURE: attn_gpu.map_tile

// A per-step decay in the quadratic form: cumulative log decays of the rows, the keys' base,
// then each key tile's.
// DECAY: attn_gpu.log_decay_prefix %{{.*}}[{{.*}}] below %{{.*}} : memref<64xf32
// DECAY: attn_gpu.log_decay_prefix {{.*}} carry {{.*}} {total_only}
// DECAY: scf.for
// DECAY: attn_gpu.log_decay_prefix {{.*}} carry
// DECAY: attn_gpu.score {{.*}} decay
// DECAY-NOT: log_decay

// A forget-gate softmax: the same cumulative log decays, added to the scores (log_decay)
// before the online softmax; the score keeps its scale (no folding into the exp2's FMA).
// FORGET: attn_gpu.log_decay_prefix %{{.*}}[{{.*}}] below %{{.*}} : memref<{{[0-9]+}}xf32
// FORGET: attn_gpu.log_decay_prefix {{.*}} carry {{.*}} {total_only}
// FORGET: scf.for
// FORGET: attn_gpu.log_decay_prefix {{.*}} carry
// FORGET: attn_gpu.score {{.*}} decay {{.*}} {fill = 0xFF800000 : f32, log_decay}
// FORGET: math.rsqrt
// FORGET-NEXT: arith.mulf
// FORGET-NEXT: attn_gpu.yield
// FORGET: attn_gpu.row_reduce <max>
// FORGET: math.exp2

// F32: the CUDA back end takes f16 or bf16 q, k, v (got 'f32'); compile with --dtype=bf16
// TWOPASS: the GPU back end needs the online softmax (run attn-online-softmax)
// DYN: the CUDA back end needs static head and value dims: declare them (d = 128) or pass --set d=128
// BQ: block-q must be 16, 32, 64 or 128 on CUDA, got 48

// FlashAttention-3's intra-warpgroup overlap (sm_90a, overlap=true): the first key tile's S
// before the loop, which carries S one tile ahead; each iteration copies K of the next tile
// and V of this one as one stage, issues the next S asynchronously, scores this tile and runs
// its softmax, issues P V asynchronously and waits for both.
// sm_90a, softmax, d = 128, not paged: the kernel asks for 3 blocks per SM (min_blocks; the
// paged decode kernel below does not).
// OVERLAP: schedule = {block_k = 32 : i64, block_q = 64 : i64, min_blocks = 3 : i64, warps = 4 : i64}
// OVERLAP: attn_gpu.copy_key_tile %arg1[{{.*}}, %[[LB:[^ ]*]]] below {{.*}} {interior}
// OVERLAP: %[[FIRST:.*]] = attn_gpu.mma %{{.*}}, %[[KT:[^ ]*]], %{{.*}} {transpose_b}
// OVERLAP-NEXT: gpu.barrier
// OVERLAP: scf.for %[[J:.*]] = %[[LB]] to %{{.*}} iter_args(%{{.*}}, %{{.*}}, %{{.*}}, %[[S:.*]] = %[[FIRST]])
// OVERLAP: %[[NEXT:.*]] = arith.addi %[[J]]
// OVERLAP-NEXT: attn_gpu.copy_key_tile %arg1[{{.*}}, %[[NEXT]]] below {{.*}} -> %[[KT]] {interior}
// OVERLAP-NEXT: attn_gpu.copy_key_tile %arg2[{{.*}}, %[[J]]] below {{.*}} {interior}
// OVERLAP: %[[AHEAD:.*]] = attn_gpu.mma %{{.*}}, %[[KT]], %{{.*}} {async, transpose_b}
// OVERLAP: attn_gpu.score %[[S]][{{.*}}, %[[J]]]
// OVERLAP: %[[PV:.*]] = attn_gpu.mma %{{.*}}, %{{.*}}, %{{.*}} {async}
// OVERLAP-NEXT: %[[DONE:.*]]:2 = attn_gpu.mma_wait %[[AHEAD]], %[[PV]] {pending = 0 : i64}
// OVERLAP-NEXT: gpu.barrier
// OVERLAP-NEXT: scf.yield %{{.*}}, %{{.*}}, %[[DONE]]#1, %[[DONE]]#0

// A score that is dot * C for a constant C > 0 (here rsqrt(64)): the score op yields the dot;
// the row max is scaled by C (0.125) and the exponent by C log2(e) (0.18033688), one fma per
// element. Softmax K/V copies take the unpredicated branch for interior tiles.
// SCALE: attn_gpu.copy_key_tile %arg1{{.*}} {interior}
// SCALE: attn_gpu.score
// SCALE-NEXT: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %[[DOT:.*]]: f32):
// SCALE-NEXT: attn_gpu.yield %[[DOT]] : f32
// SCALE: attn_gpu.quad_reduce <max>
// SCALE-NEXT: arith.constant dense<1.250000e-01>
// SCALE-NEXT: arith.mulf
// SCALE: arith.constant dense<0.180336878> : tensor<64x32xf32
// SCALE-NEXT: arith.mulf
// SCALE-NEXT: arith.subf
// SCALE-NEXT: math.exp2
// SCALE: attn_gpu.copy_key_tile %arg2{{.*}} {interior}

// No online softmax (sigmoid): the score keeps its scale and the copies stay predicated (the
// unpredicated branch costs these kernels registers).
// SIGMOID: attn_gpu.copy_key_tile
// SIGMOID-NOT: {interior}
// SIGMOID: attn_gpu.score
// SIGMOID: arith.mulf
// SIGMOID: attn_gpu.yield

// Cosine attention reads the row norms dot(q, q) and dot(k, k): the Q tile's once after it
// lands, each K tile's after its wait (a barrier before the scores read them); the score op
// hands them to the score region. The serial loop (the overlapped one would refill K first).
// NORMS: attn_gpu.copy_query_tile
// NORMS: gpu.barrier
// NORMS: attn_gpu.row_squares %[[QT:.*]] -> %[[QN:.*]] : memref<64x136xbf16, #gpu.address_space<workgroup>> -> memref<64xf32
// NORMS: gpu.barrier
// NORMS: scf.for
// NORMS: attn_gpu.copy_key_tile %{{.*}} -> %[[KT:[^ ]*]]
// NORMS: gpu.barrier
// NORMS: attn_gpu.row_squares %[[KT]] -> %[[KN:.*]] : memref<32x136xbf16
// NORMS: gpu.barrier
// NORMS: attn_gpu.score {{.*}} norms %[[QN]], %[[KN]]
// NORMS: ^bb0(%{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: f32, %{{.*}}: f32, %{{.*}}: f32):
// NORMS-NOT: attn_gpu.mma_wait
