// attn-gpu-distribute, chunk and scan strategies: a chunked recurrence becomes a kernel at the GPU
// tile level. Grid x = value-column slices, y = heads, z = batch; one CTA walks the chunks in order,
// the running state a warp_acc fragment (each warp its own rows) carried by the chunk loop, shared
// with the next chunk's Q.S product through a 16-bit shared copy.
// RUN: attnc %specs/retnet.attn --emit=tiled -o %t.retnet.mlir
// RUN: attnc-opt %t.retnet.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --implicit-check-not=attn.tile_
// RUN: attnc %specs/gla.attn --emit=tiled -o %t.gla.mlir
// RUN: attnc-opt %t.gla.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=GATE
// RUN: attnc %specs/linear_elu_norm.attn --emit=tiled -o %t.norm.mlir
// RUN: attnc-opt %t.norm.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=NORM
// RUN: attnc %specs/mamba2_step.attn --emit=tiled -o %t.step.mlir
// RUN: attnc-opt %t.step.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=STEP
// RUN: attnc %specs/performer.attn --emit=tiled -o %t.perf.mlir
// RUN: attnc-opt %t.perf.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=PROJ
// RUN: attnc %specs/retnet.attn --emit=tiled -o %t.slice.mlir
// RUN: attnc-opt %t.slice.mlir --attn-gpu-select-strategy --attn-gpu-distribute=value-slice=64 | FileCheck %s --check-prefix=SLICE
// RUN: attnc %specs/rwkv6.attn --emit=tiled -o %t.rwkv.mlir
// RUN: attnc-opt %t.rwkv.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=STRICT
// RUN: attnc %S/../../python/specs/strict_recurrence.attn --emit=tiled -o %t.strict.mlir
// RUN: attnc-opt %t.strict.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=STRICTD
// RUN: attnc %specs/transnormer.attn --emit=tiled -o %t.rms.mlir
// RUN: attnc-opt %t.rms.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=RMS80
// RUN: attnc-opt %t.rms.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a | FileCheck %s --check-prefix=RMS90
// RUN: sed 's/dv = 128/dv = 256/' %specs/transnormer.attn > %t.rms256.attn
// RUN: attnc %t.rms256.attn --emit=tiled -o %t.rms256.mlir
// RUN: attnc-opt %t.rms256.mlir --attn-gpu-select-strategy --attn-gpu-distribute=chip=sm_90a | FileCheck %s --check-prefix=RMS256
// RUN: not attnc-opt %t.rms256.mlir --attn-gpu-select-strategy '--attn-gpu-distribute=chip=sm_90a value-slice=16' 2>&1 | FileCheck %s --check-prefix=RMSBAD
// RUN: attnc %specs/s4d.attn --emit=tiled -o %t.scan.mlir
// RUN: attnc-opt %t.scan.mlir --attn-gpu-select-strategy --attn-gpu-distribute | FileCheck %s --check-prefix=SCAN

// RetNet: chunk 64, d 128, value slices of 32 columns, 4 warps; per-head decay 1 - 2^(-5-h).
// CHECK: gpu.func @retnet({{.*}}) kernel attributes {attn_gpu.launch = #attn_gpu.launch<threads = 128, grid = [<arg 3 dim 3 * 1 ceil_div 32>
// CHECK: %[[COL0:.*]] = arith.muli %block_id_x, %c32 : index
// CHECK-DAG: %[[QT:.*]] = attn_gpu.alloc_shared : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: %[[KT:.*]] = attn_gpu.alloc_shared : memref<64x136xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: %[[VT:.*]] = attn_gpu.alloc_shared : memref<64x40xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: %[[SS:.*]] = attn_gpu.alloc_shared : memref<128x40xbf16, #gpu.address_space<workgroup>>
// CHECK-DAG: %[[CUM:.*]] = attn_gpu.alloc_shared : memref<64xf32, #gpu.address_space<workgroup>>
// The state starts at zero: 128 rows over 4 warps, 32 x 32 each.
// CHECK: %[[S0:.*]] = arith.constant dense<0.000000e+00> : tensor<32x32xf32, #attn_gpu.frag<warp_acc>>
// CHECK: attn_gpu.share_state %[[S0]] -> %[[SS]]
// CHECK: scf.for %[[T:.*]] = %c0 to %{{.*}} step %c64 iter_args(%[[S:.*]] = %[[S0]]) -> (tensor<32x32xf32, #attn_gpu.frag<warp_acc>>)
// CHECK: attn_gpu.copy_query_tile %{{.*}}[%block_id_z, %block_id_y, %[[T]]] -> %[[QT]]
// CHECK: attn_gpu.copy_key_tile %{{.*}}[%block_id_z, %block_id_y, %[[T]]] below %{{.*}} -> %[[KT]]
// CHECK: attn_gpu.copy_key_tile %{{.*}}[%block_id_z, %block_id_y, %[[T]]] below %{{.*}} columns_from %[[COL0]] -> %[[VT]]
// CHECK: gpu.barrier
// Cumulative log decays within the chunk (relative: no carry across chunks).
// CHECK: attn_gpu.log_decay_prefix %[[CUM]][%block_id_z, %block_id_y, %[[T]]] below %{{.*}} {relative}
// Intra-chunk scores, causal within the chunk, decayed by cum[i] - cum[j].
// CHECK: %[[QA:.*]] = attn_gpu.load_operand %[[QT]]
// CHECK: %[[QK:.*]] = attn_gpu.mma %[[QA]], %[[KT]], %{{.*}} {transpose_b}
// CHECK: %[[P:.*]] = attn_gpu.score %[[QK]][{{.*}}] below {{.*}} decay %[[CUM]], %[[CUM]] {fill = 0.000000e+00 : f32}
// CHECK: mask {
// CHECK: arith.cmpi ule
// The inter-chunk term Q.S, scaled like a score, then decayed by exp(cum[i]).
// CHECK: %[[QS:.*]] = attn_gpu.mma %[[QA]], %[[SS]], %{{.*}} : {{.*}} -> tensor<64x32xf32, #attn_gpu.frag<acc>>
// CHECK: %[[QSS:.*]] = attn_gpu.map_elements %[[QS]]
// CHECK: math.rsqrt
// CHECK: %[[ROWS:.*]] = attn_gpu.load_rows %[[CUM]]
// CHECK: math.exp %[[ROWS]]
// CHECK: attn_gpu.broadcast_rows
// CHECK: %[[INTER:.*]] = arith.mulf %[[QSS]]
// O = inter + P.V, stored into this CTA's column slice.
// CHECK: %[[PA:.*]] = attn_gpu.to_operand %[[P]]
// CHECK: %[[O:.*]] = attn_gpu.mma %[[PA]], %[[VT]], %[[INTER]]
// CHECK: attn_gpu.store_tile %[[O]] -> %{{.*}}[%block_id_z, %block_id_y, %[[T]]] columns_from %[[COL0]] below
// The state update: S = exp(total) S + sum_j exp(total - cum[j]) k_j v_j^T.
// CHECK: %[[S1:.*]] = attn_gpu.state_update %[[S]], %[[KT]], %[[VT]][%[[T]]] last %{{.*}} below %{{.*}} decay %[[CUM]]
// CHECK: gpu.barrier
// CHECK: attn_gpu.share_state %[[S1]] -> %[[SS]]
// CHECK: scf.yield %[[S1]]

// GLA: a per-key-dimension gate: cumulative log gates in a [chunk, dk] shared tile, the keys
// scaled by exp(-cum) in place, Q scaled by exp(cum) as an operand, the state by the chunk's total.
// GATE: scf.for
// GATE: attn_gpu.log_gate_prefix %[[G:.*]][%block_id_z, %block_id_y, %{{.*}}] below %{{.*}} : memref<64x128xf32
// GATE: attn_gpu.gate_keys %[[K:.*]], %[[G]]
// GATE: %[[QG:.*]] = attn_gpu.gate_operand %{{.*}}, %[[G]]
// GATE: attn_gpu.mma %[[QG]], %[[K]], %{{.*}} gate %[[G]] {gate_blocks, transpose_b}
// GATE: attn_gpu.mma %[[QG]], %{{.*}}, %{{.*}} gate %[[G]] :
// GATE: attn_gpu.state_update {{.*}} gate %[[G]] :

// Normalised linear attention: the state carries 8 extra columns, column 32 is z = sum_j phi(k_j);
// the denominator is q.z (columns 32..39 of the Q.S product) plus the row sums of P.
// NORM: share_state %{{.*}} : tensor<32x40xf32, #attn_gpu.frag<warp_acc>> -> memref<128x48xbf16
// NORM: %[[QS:.*]] = attn_gpu.mma {{.*}} -> tensor<64x40xf32, #attn_gpu.frag<acc>>
// NORM: attn_gpu.columns %{{.*}}[0] : tensor<64x40xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32
// NORM: attn_gpu.columns %{{.*}}[32] : tensor<64x40xf32, #attn_gpu.frag<acc>> -> tensor<64x8xf32
// NORM: attn_gpu.row_reduce
// NORM: arith.divf
// NORM: attn_gpu.state_update {{.*}} {normalize}

// Mamba-2 decoding step: one chunk of 16 rows; the state loaded from and stored to the f32 state
// tensor (128 rows of 64 columns per head, 16 columns per CTA); dt scales the keys.
// STEP: %[[S0:.*]] = attn_gpu.load_state %{{.*}}[%block_id_z, %block_id_y, %{{.*}}] {rows = 128 : i64} : memref<?x?x128x64xf32, {{.*}}> -> tensor<128x16xf32, #attn_gpu.frag<warp_acc>>
// STEP: %[[SF:.*]] = scf.for {{.*}} step %c16{{.*}} iter_args(%{{.*}} = %[[S0]])
// STEP: attn_gpu.key_factors
// STEP: attn_gpu.load_acc
// STEP: attn_gpu.state_update {{.*}} decay %{{.*}} key_scale %{{.*}} :
// STEP: attn_gpu.store_state %[[SF]] -> %{{.*}}[%block_id_z, %block_id_y, %{{.*}}] {rows = 128 : i64}

// Performer: q and k projected by the random-feature matrix in shared memory before the chunk math.
// PROJ: attn_gpu.copy_matrix %{{.*}} -> %[[W:.*]] : memref<128x64xf32, {{.*}}> -> memref<128x72xbf16
// PROJ: scf.for
// PROJ: attn_gpu.project_tile %{{.*}}, %[[W]] -> %{{.*}} : memref<64x72xbf16
// PROJ: attn_gpu.project_tile %{{.*}}, %[[W]] -> %{{.*}} : memref<64x72xbf16
// PROJ: attn_gpu.state_update {{.*}} {normalize}

// value-slice=64: 64 value columns per CTA, the state 32 x 64 per warp.
// SLICE: grid = [<arg 3 dim 3 * 1 ceil_div 64>
// SLICE: arith.muli %block_id_x, %c64 : index
// SLICE: tensor<32x64xf32, #attn_gpu.frag<warp_acc>>

// S4D: the scan strategy, one thread per (state, channel) pair stepping through the sequence in
// blocks of 8, scalar f32 loads and exps; no tiles, no tensor cores.
// SCAN: gpu.func @s4d({{.*}}) kernel attributes {attn_gpu.launch
// SCAN-NOT: attn_gpu.mma
// SCAN: scf.for {{.*}} step %c8 iter_args
// SCAN: math.exp
// SCAN-NOT: attn_gpu.mma
// SCAN: gpu.return

// RWKV-6, a strict-causal chunk: the bonus dot of each row's own q and k (before gate_keys
// rewrites K), q's gates from the row before (gate_operand strict), the mask j < i, and the
// bonus term score(dot) v_i added to P V from V's rows in the accumulator layout.
// STRICT: attn_gpu.row_dot %{{.*}}, %{{.*}}[%block_id_z, %block_id_y, %{{.*}}] below %{{.*}} {columns = 64 : i64}
// STRICT: attn_gpu.log_gate_prefix
// STRICT: attn_gpu.gate_keys
// STRICT: attn_gpu.gate_operand %{{.*}}, %{{.*}} {strict}
// STRICT: attn_gpu.score
// STRICT: arith.cmpi ult
// STRICT: attn_gpu.mma
// STRICT: attn_gpu.broadcast_rows
// STRICT: attn_gpu.map_elements
// STRICT: attn_gpu.load_acc
// STRICT: attn_gpu.state_update

// A strict per-step decay: the rows' exclusive log decays (the state before their step) feed
// the score's query side and the state term; the keys' inclusive ones the rest.
// STRICTD-LABEL: gpu.func @strict_decay_state
// STRICTD: attn_gpu.log_decay_prefix %[[CUM:.*]][%block_id_z, %block_id_y, %{{.*}}] below %{{.*}} exclusive %[[EX:[^ ]*]] {relative}
// STRICTD: attn_gpu.score %{{.*}} decay %[[EX]], %[[CUM]] key_scale
// STRICTD: arith.cmpi ult
// STRICTD: attn_gpu.load_rows %[[EX]]
// STRICTD: attn_gpu.state_update {{.*}} decay %[[CUM]]

// A strict recurrence whose dims are not multiples of 16 takes the scan kernel: each step's row
// is summed over the lanes' state entries before the step (and the bonus-weighted q_t . k_t),
// then stored; no tensor cores.
// STRICTD-LABEL: gpu.func @strict_scan
// STRICTD-NOT: attn_gpu.mma
// STRICTD: scf.for {{.*}} step %c8
// STRICTD: gpu.shuffle  xor
// STRICTD: memref.store
// STRICTD: gpu.return

// An output rmsnorm (TransNormer). Before sm_90a a block holds the rows' whole value dim: one
// slice of 128 columns, so only b x h blocks.
// RMS80: gpu.func @transnormer({{.*}}grid = [<arg 3 dim 3 * 1 ceil_div 128>{{.*}}value_slice = 128
// RMS80-NOT: nvvm.cluster_dim
// RMS80-NOT: attn_gpu.cluster_
// RMS80: %[[SQ:.*]] = attn_gpu.quad_reduce <sum>
// RMS80: arith.mulf %[[SQ]], %{{.*}} : tensor<64xf32, #attn_gpu.frag<rows>>
// RMS80: math.rsqrt
// On sm_90a the value dim splits into slices of 32 as without the norm, and the 4 slices of a
// row are one thread-block cluster. Each chunk publishes its rows' partial sums of squares
// (two slots of 64 alternating by chunk) and carries its unnormalised rows; the next chunk
// gathers the cluster's sums (waiting on the cluster barrier a chunk later), divides by the
// whole 128, scales and stores them before publishing its own. The last chunk finishes after
// the loop, then a cluster barrier keeps every block's sums alive until its peers read them.
// RMS90: gpu.func @transnormer({{.*}}grid = [<arg 3 dim 3 * 1 ceil_div 32>{{.*}}cluster = 4 : i64{{.*}}value_slice = 32 : i64{{.*}}nvvm.cluster_dim = array<i32: 4, 1, 1>
// RMS90: attn_gpu.alloc_shared : memref<64xf32, #gpu.address_space<workgroup>>
// RMS90-NEXT: %[[SQUARES:.*]] = attn_gpu.alloc_shared : memref<128xf32, #gpu.address_space<workgroup>>
// RMS90: %[[LOOP:.*]]:2 = scf.for %[[N0:.*]] = %c0 to %{{.*}} step %c64 iter_args(%[[S:.*]] = %{{.*}}, %[[PENDING:.*]] = %{{.*}}) -> (tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, tensor<64x32xf32, #attn_gpu.frag<acc>>)
// RMS90: %[[O:.*]] = attn_gpu.mma %{{.*}} : tensor<64x64xbf16, #attn_gpu.frag<operand_a>>, memref<64x40xbf16
// RMS90-NEXT: %[[O2:.*]] = arith.mulf %[[O]], %[[O]]
// RMS90-NEXT: %[[ROWSUM:.*]] = attn_gpu.row_reduce <sum> %[[O2]]
// RMS90-NEXT: %[[PART:.*]] = attn_gpu.quad_reduce <sum> %[[ROWSUM]]
// RMS90: %[[ANY:.*]] = arith.cmpi ugt, %[[N0]], %{{.*}} : index
// RMS90: %[[PREV:.*]] = arith.subi %[[N0]], %c64{{.*}} : index
// RMS90: scf.if %[[ANY]] {
// RMS90: %[[PSLOT:.*]] = arith.muli
// RMS90-NEXT: %[[ALL:.*]] = attn_gpu.cluster_gather %[[SQUARES]][%[[PSLOT]]] : memref<128xf32, #gpu.address_space<workgroup>> -> tensor<64xf32, #attn_gpu.frag<rows>>
// RMS90-NEXT: %[[INV:.*]] = arith.constant dense<7.812500e-03> : tensor<64xf32, #attn_gpu.frag<rows>>
// RMS90-NEXT: arith.mulf %[[ALL]], %[[INV]]
// RMS90: math.rsqrt
// RMS90: %[[SCALED:.*]] = arith.mulf %[[PENDING]], %{{.*}} : tensor<64x32xf32, #attn_gpu.frag<acc>>
// RMS90-NEXT: attn_gpu.store_tile %[[SCALED]] -> %{{.*}}[%{{.*}}, %{{.*}}, %[[PREV]]]
// RMS90-NEXT: }
// RMS90: %[[SLOT:.*]] = arith.muli
// RMS90-NEXT: attn_gpu.cluster_publish %[[PART]], %[[SQUARES]][%[[SLOT]]]
// RMS90: attn_gpu.state_update
// RMS90: scf.yield %{{.*}}, %[[O]] :
// RMS90: %[[LASTQ:.*]] = arith.divui
// RMS90-NEXT: %[[LAST:.*]] = arith.muli %[[LASTQ]], %c64
// RMS90: %[[NONEMPTY:.*]] = arith.cmpi ugt
// RMS90-NEXT: scf.if %[[NONEMPTY]] {
// RMS90: attn_gpu.cluster_gather %[[SQUARES]]
// RMS90: arith.mulf %[[LOOP]]#1, %{{.*}}
// RMS90-NEXT: attn_gpu.store_tile %{{.*}}[%{{.*}}, %{{.*}}, %[[LAST]]]
// RMS90-NEXT: }
// RMS90-NEXT: attn_gpu.cluster_sync
// RMS90-NEXT: gpu.return
// A value dim of 256 (more than one block held before): 8 slices of 32, a cluster of 8, the
// squares divided by 256. More slices than a portable cluster holds (8) is an error that
// names the smallest slice that fits.
// RMS256: gpu.func @transnormer({{.*}}grid = [<arg 3 dim 3 * 1 ceil_div 32>{{.*}}cluster = 8 : i64{{.*}}nvvm.cluster_dim = array<i32: 8, 1, 1>
// RMS256: attn_gpu.cluster_gather
// RMS256-NEXT: arith.constant dense<3.906250e-03>
// RMSBAD: error: an output rmsnorm sums a row over the blocks of one cluster, at most 8 slices: a --value-slice of at least 32 for a value dim of 256
