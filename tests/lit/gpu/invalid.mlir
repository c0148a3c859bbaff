// The attn_gpu verifiers say what is wrong in the kernel's terms.
// RUN: attnc-opt %s --split-input-file --verify-diagnostics

// expected-error @+1 {{allocates shared memory: the type needs #gpu.address_space<workgroup>}}
%t = attn_gpu.alloc_shared : memref<64x136xbf16>

// -----

!smem = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @operand_shape(%t: !smem) {
  // expected-error @+1 {{reads a padded [rows, columns + 8] tile of its element type}}
  %a = attn_gpu.load_operand %t : !smem -> tensor<64x64xbf16, #attn_gpu.frag<operand_a>>
  return
}

// -----

!smem = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @operand_layout(%t: !smem) {
  // expected-error @+1 {{the result must be a fragment of layout #attn_gpu.frag<operand_a>}}
  %a = attn_gpu.load_operand %t : !smem -> tensor<64x128xbf16, #attn_gpu.frag<acc>>
  return
}

// -----

!k = memref<32x136xbf16, #gpu.address_space<workgroup>>
func.func @mma_shape(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !k,
                     %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{needs b of [N, K] = [64, 128] (+8 padding unless swizzled)}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

// The swizzle lays out whole 8-row atoms of 128-byte rows.
// expected-error @+1 {{#attn_gpu.swizzle lays out static [rows, columns] tiles of whole 8-row atoms}}
func.func @swizzle_rows(%t: memref<12x64xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>) {
  return
}

// -----

// expected-error @+1 {{#attn_gpu.swizzle supports the 128-byte swizzle only, got 64}}
func.func @swizzle_bytes(%t: memref<16x64xbf16, #attn_gpu.swizzle<64>, #gpu.address_space<workgroup>>) {
  return
}

// -----

func.func @swizzle_columns() {
  // expected-error @+1 {{lays out swizzled 16-bit tiles of whole 32-byte column steps only}}
  %t = attn_gpu.alloc_shared : memref<16x40xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
  return
}

// -----

!sw = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
func.func @swizzled_b_needs_wgmma(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !sw,
                                  %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{a swizzled b takes kind wgmma_m64nNk16}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b, kind = #attn_gpu.mma<mma_sync_m16n8k16>} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !sw, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!k = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @wgmma_needs_swizzled_b(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !k,
                                  %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{reads B through a wgmma descriptor: b must be a #attn_gpu.swizzle tile}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b, kind = #attn_gpu.mma<wgmma_m64nNk16>} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!sw = memref<32x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
func.func @wgmma_warpgroups(%a: tensor<32x128xbf16, #attn_gpu.frag<operand_a>>, %k: !sw,
                            %acc: tensor<32x32xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{as wgmma needs whole warpgroups (rows a multiple of 64)}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b, kind = #attn_gpu.mma<wgmma_m64nNk16>} : tensor<32x128xbf16, #attn_gpu.frag<operand_a>>, !sw, tensor<32x32xf32, #attn_gpu.frag<acc>> -> tensor<32x32xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!q = memref<64x136xbf16, #gpu.address_space<workgroup>>
!sw = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
func.func @shared_a_needs_swizzle(%q: !q, %k: !sw, %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{reads a from shared memory only as wgmma from a #attn_gpu.swizzle tile}}
  %s = attn_gpu.mma %q, %k, %acc {transpose_b, kind = #attn_gpu.mma<wgmma_m64nNk16>} : !q, !sw, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!sw = memref<64x128xbf16, #attn_gpu.swizzle<128>, #gpu.address_space<workgroup>>
func.func @ldmatrix_of_swizzle(%t: !sw) {
  // expected-error @+1 {{reads a padded tile with ldmatrix, not a swizzled one}}
  %a = attn_gpu.load_operand %t : !sw -> tensor<64x128xbf16, #attn_gpu.frag<operand_a>>
  return
}

// -----

func.func @rows_of_16(%x: tensor<24x32xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{the operand must have a multiple of 16 rows (16 per warp), got 24}}
  %r = attn_gpu.row_reduce <max> %x : tensor<24x32xf32, #attn_gpu.frag<acc>> -> tensor<24xf32, #attn_gpu.frag<rows>>
  return
}

// -----

func.func @quad_min(%x: tensor<64xf32, #attn_gpu.frag<rows>>) {
  // expected-error @+1 {{reduces by max or sum}}
  %r = attn_gpu.quad_reduce <min> %x : tensor<64xf32, #attn_gpu.frag<rows>>
  return
}

// -----

func.func @to_operand_f32(%x: tensor<64x32xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{rounds an f32 tile to an f16/bf16 tile of the same shape}}
  %r = attn_gpu.to_operand %x : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32, #attn_gpu.frag<operand_a>>
  return
}

// -----

!k = memref<32x136xbf16, #gpu.address_space<workgroup>>
func.func @pages_without_size(%k: memref<?x?x?x128xbf16>, %t: !k, %table: memref<?x?xi32>, %i: index) {
  // expected-error @+1 {{takes a page size > 0 exactly when it reads through a block table}}
  attn_gpu.copy_key_tile %k[%i, %i, %i] below %i pages %table -> %t : memref<?x?x?x128xbf16> pages memref<?x?xi32> -> !k
  return
}

// -----

func.func @store_rank(%x: tensor<64x128xf32, #attn_gpu.frag<acc>>, %o: memref<?x?x?xf32>, %i: index) {
  // expected-error @+1 {{writes a rank-4 output, or a rank-5 partial buffer at one split index}}
  attn_gpu.store_tile %x -> %o[%i, %i, %i] below %i : tensor<64x128xf32, #attn_gpu.frag<acc>> -> memref<?x?x?xf32>
  return
}

// -----

func.func @state_block(%state: memref<?x?x128x32xf32>, %b: index) {
  // expected-error @+1 {{needs a warp block of rows dividing the state's 128, got 'tensor<48x32xf32, #attn_gpu.frag<warp_acc>>'}}
  %s = attn_gpu.load_state %state[%b, %b, %b] {rows = 128 : i64} : memref<?x?x128x32xf32> -> tensor<48x32xf32, #attn_gpu.frag<warp_acc>>
  return
}

// -----

func.func @state_layout(%state: memref<?x?x128x32xf32>, %b: index) {
  // expected-error @+1 {{the state must be a fragment of layout #attn_gpu.frag<warp_acc>}}
  %s = attn_gpu.load_state %state[%b, %b, %b] {rows = 128 : i64} : memref<?x?x128x32xf32> -> tensor<32x32xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!st = memref<128x40xf32, #gpu.address_space<workgroup>>
func.func @share_state_width(%s: tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, %t: !st) {
  // expected-error @+1 {{writes a 16-bit rank-2 tile}}
  attn_gpu.share_state %s -> %t : tensor<32x32xf32, #attn_gpu.frag<warp_acc>> -> !st
  return
}

// -----

!kt = memref<64x136xbf16, #gpu.address_space<workgroup>>
!vt = memref<64x40xbf16, #gpu.address_space<workgroup>>
func.func @state_update_norm(%s: tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, %k: !kt, %v: !vt,
                             %n: index) {
  // The normalised state carries 8 more columns (the keys' weight sum) than V.
  // expected-error @+1 {{needs a state of 40 columns, got 'tensor<32x32xf32, #attn_gpu.frag<warp_acc>>'}}
  %r = attn_gpu.state_update %s, %k, %v[%n] last %n below %n {normalize} : tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, !kt, !vt -> tensor<32x32xf32, #attn_gpu.frag<warp_acc>>
  return
}

// -----

!kt = memref<64x136xbf16, #gpu.address_space<workgroup>>
!vt = memref<32x40xbf16, #gpu.address_space<workgroup>>
func.func @state_update_rows(%s: tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, %k: !kt, %v: !vt,
                             %n: index) {
  // expected-error @+1 {{needs 16-bit K and V tiles of one chunk's rows}}
  %r = attn_gpu.state_update %s, %k, %v[%n] last %n below %n : tensor<32x32xf32, #attn_gpu.frag<warp_acc>>, !kt, !vt -> tensor<32x32xf32, #attn_gpu.frag<warp_acc>>
  return
}

// -----

func.func @map_elements_args(%x: tensor<64x32xf32, #attn_gpu.frag<acc>>, %n: index) {
  // expected-error @+1 {{takes a region of (b, h, i, j, x)}}
  %r = attn_gpu.map_elements %x[%n, %n, %n, %n] below %n : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32, #attn_gpu.frag<acc>> {
  ^bb0(%v: f32):
    attn_gpu.yield %v : f32
  }
  return
}

// -----

func.func @columns_block(%x: tensor<64x32xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{takes whole 8-column blocks of the operand's rows, got [4, 20)}}
  %r = attn_gpu.columns %x[4] : tensor<64x32xf32, #attn_gpu.frag<acc>> -> tensor<64x16xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!cum = memref<32xf32, #gpu.address_space<workgroup>>
func.func @load_rows_short(%c: !cum) {
  // expected-error @+1 {{reads an f32 value for each of its rows}}
  %r = attn_gpu.load_rows %c : !cum -> tensor<64xf32, #attn_gpu.frag<rows>>
  return
}

// -----

!vt = memref<64x24xbf16, #gpu.address_space<workgroup>>
func.func @load_acc_wide(%v: !vt) {
  // expected-error @+1 {{reads the first columns of a 16-bit or f32 tile of its rows into f32}}
  %r = attn_gpu.load_acc %v : !vt -> tensor<64x32xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!g = memref<64x64xf32, #gpu.address_space<workgroup>>
func.func @gate_channels(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %g: !g) {
  // expected-error @+1 {{needs a gate per channel of a}}
  %r = attn_gpu.gate_operand %a, %g : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !g -> tensor<64x128xbf16, #attn_gpu.frag<operand_a>>
  return
}

// -----

!kt = memref<64x136xbf16, #gpu.address_space<workgroup>>
!g = memref<64x128xf32, #gpu.address_space<workgroup>>
func.func @gate_blocks_alone(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !kt,
                             %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  // expected-error @+1 {{has gate_blocks without gates}}
  %r = attn_gpu.mma %a, %k, %acc {gate_blocks, transpose_b} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !kt, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!raw = memref<64x72xbf16, #gpu.address_space<workgroup>>
!wt = memref<128x136xbf16, #gpu.address_space<workgroup>>
!ft = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @project_dims(%x: !raw, %w: !wt, %f: !ft) {
  // x has 64 channels, w rows of 128: they do not multiply.
  // expected-error @+1 {{projects [R, D] rows by w [M, D] into [R, M] (D, M multiples of 16)}}
  attn_gpu.project_tile %x, %w -> %f : !raw, !wt -> !ft {
  ^bb0(%xw: f32, %xx: f32):
    attn_gpu.yield %xw : f32
  }
  return
}

// -----

!wt = memref<128x72xbf16, #gpu.address_space<workgroup>>
func.func @copy_matrix_dynamic(%w: memref<?x64xf32>, %t: !wt) {
  // expected-error @+1 {{copies a static matrix into a padded 16-bit tile of its shape}}
  attn_gpu.copy_matrix %w -> %t : memref<?x64xf32> -> !wt
  return
}

// -----

!cum = memref<48xf32, #gpu.address_space<workgroup>>
func.func @decay_prefix_size(%c: !cum, %n: index) {
  // expected-error @+1 {{computes up to 32 positions, or a multiple of 32, got 48}}
  attn_gpu.log_decay_prefix %c[%n, %n, %n] below %n {relative} : !cum {
  ^bb0(%b: index, %h: index, %p: index):
    %x = arith.constant 0.5 : f32
    attn_gpu.yield %x : f32
  }
  return
}

// -----

#acc = #attn_gpu.frag<acc>
func.func @transposed_packed(%s: tensor<64x32xf32, #acc>, %n: index) {
  // expected-error @+1 {{transposed (key-major) takes no GQA packing or key factors}}
  %r = attn_gpu.score %s[%n, %n, %n, %n] below %n, %n {fill = 0.0 : f32, pack = 2 : i64, transposed} : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn_gpu.yield %dot : f32
  }
  return
}

// -----

#acc = #attn_gpu.frag<acc>
func.func @score_grad_args(%s: tensor<64x32xf32, #acc>, %n: index) {
  // expected-error @+1 {{takes a region of (b, h, i, j, dot, ds)}}
  %r = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn_gpu.yield %dot : f32
  }
  return
}

// -----

#acc = #attn_gpu.frag<acc>
func.func @accumulate_rank(%s: tensor<64x32xf32, #acc>, %g: memref<?x?xf32>, %n: index) {
  %r = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %ds: f32):
    // expected-error @+1 {{takes one index per dimension of the gradient}}
    attn_gpu.accumulate %ds -> %g[%h] : memref<?x?xf32>
    attn_gpu.yield %dot : f32
  }
  return
}

// -----

#acc = #attn_gpu.frag<acc>
func.func @columns_short(%v: memref<16xf32, #gpu.address_space<workgroup>>) {
  // expected-error @+1 {{reads an f32 value for each of its columns}}
  %r = attn_gpu.load_columns %v : memref<16xf32, #gpu.address_space<workgroup>> -> tensor<64x32xf32, #acc>
  return
}

// -----

!k = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @async_mma_unwaited(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !k,
                              %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) -> tensor<64x64xf32, #attn_gpu.frag<acc>> {
  // expected-error @+1 {{is async: its result's one use must be an attn_gpu.mma_wait}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b, async} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return %s : tensor<64x64xf32, #attn_gpu.frag<acc>>
}

// -----

!k = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @wait_for_sync_mma(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !k,
                             %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  %s = attn_gpu.mma %a, %k, %acc {transpose_b} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  // expected-error @+1 {{waits only for the results of async attn_gpu.mma ops}}
  %w = attn_gpu.mma_wait %s {pending = 0} : tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!k = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @wait_changes_types(%a: tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, %k: !k,
                              %acc: tensor<64x64xf32, #attn_gpu.frag<acc>>) {
  %s = attn_gpu.mma %a, %k, %acc {transpose_b, async} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
  // expected-error @+1 {{returns the accumulators it waits for, of the same types}}
  %w = attn_gpu.mma_wait %s {pending = 0} : tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x32xf32, #attn_gpu.frag<acc>>
  return
}

// -----

!dt = memref<64x40xbf16, #gpu.address_space<workgroup>>
func.func @share_tile_shape(%s: tensor<64x64xf32, #attn_gpu.frag<acc>>, %t: !dt) {
  // expected-error @+1 {{writes a padded 16-bit tile of the fragment's shape}}
  attn_gpu.share_tile %s -> %t : tensor<64x64xf32, #attn_gpu.frag<acc>> -> !dt
  return
}

// -----

!at = memref<64x40xbf16, #gpu.address_space<workgroup>>
!bt = memref<48x136xbf16, #gpu.address_space<workgroup>>
func.func @atomic_product_k(%a: !at, %bt: !bt, %o: memref<?x?x?x?xf32>, %x: index) {
  // expected-error @+1 {{needs 16-bit tiles A [K, R] (padded) and B [K, C]}}
  attn_gpu.atomic_add_product %a, %bt -> %o[%x, %x, %x] below %x : !at, !bt -> memref<?x?x?x?xf32>
  return
}

// -----

!at = memref<64x40xbf16, #gpu.address_space<workgroup>>
!bt = memref<64x56xbf16, #gpu.address_space<workgroup>>
func.func @atomic_product_columns(%a: !at, %bt: !bt, %o: memref<?x?x?x?xf32>, %x: index) {
  // expected-error @+1 {{needs R a multiple of 16 and C of 32, got 32 and 48}}
  attn_gpu.atomic_add_product %a, %bt -> %o[%x, %x, %x] below %x : !at, !bt -> memref<?x?x?x?xf32>
  return
}

// -----

!at = memref<64x40xbf16, #gpu.address_space<workgroup>>
!bt = memref<64x136xbf16, #gpu.address_space<workgroup>>
func.func @atomic_product_width(%a: !at, %bt: !bt, %o: memref<?x?x?x64xf32>, %x: index) {
  // expected-error @+1 {{adds 128 columns into a tensor of 64}}
  attn_gpu.atomic_add_product %a, %bt -> %o[%x, %x, %x] below %x : !at, !bt -> memref<?x?x?x64xf32>
  return
}

// -----

func.func @load_tile_type(%o: memref<?x?x?x?xf32>, %x: index) {
  // expected-error @+1 {{reads f32 values}}
  %t = attn_gpu.load_tile %o[%x, %x, %x] below %x : memref<?x?x?x?xf32> -> tensor<64x32xbf16, #attn_gpu.frag<acc>>
  return
}

// -----

#acc = #attn_gpu.frag<acc>
func.func @log_decay_without_cums(%s: tensor<64x32xf32, #acc>, %n: index) {
  // expected-error @+1 {{log_decay adds the cumulative log decays: it needs 'decay'}}
  %r = attn_gpu.score %s[%n, %n, %n, %n] below %n, %n {fill = 0.0 : f32, log_decay} : tensor<64x32xf32, #acc> -> tensor<64x32xf32, #acc> score {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
    attn_gpu.yield %dot : f32
  }
  return
}

// -----

!g = memref<?x?x?x64xbf16>
!pad = memref<64x72xbf16, #gpu.address_space<workgroup>>
func.func @tensor_copy_padded(%k: !g, %i: index, %map: !llvm.ptr,
                              %bar: memref<1xi64, #gpu.address_space<workgroup>>) {
  %t = attn_gpu.alloc_shared : !pad
  // expected-error @+1 {{copies by a tensor map into a swizzled tile of the source's element type only}}
  attn_gpu.copy_key_tile %k[%i, %i, %i] below %i -> %t by %map signals %bar : !g -> !pad by !llvm.ptr, memref<1xi64, #gpu.address_space<workgroup>>
  return
}

// -----

func.func @barrier_in_global(%bar: memref<1xi64>) {
  // expected-error @+1 {{takes an mbarrier as memref<1xi64> in shared memory}}
  attn_gpu.init_barrier %bar : memref<1xi64>
  return
}

// -----

func.func @no_arrivals(%bar: memref<1xi64, #gpu.address_space<workgroup>>) {
  // expected-error @+1 {{expects at least one arrival per phase, got 0}}
  attn_gpu.init_barrier %bar arrivals 0 : memref<1xi64, #gpu.address_space<workgroup>>
  return
}

// -----

func.func @roles_outside_kernel() {
  // expected-error @+1 {{lies outside a kernel (gpu.func)}}
  attn_gpu.warp_specialize consumers(1) {
    gpu.barrier
  } producer {
    gpu.barrier
  }
  return
}

// -----

gpu.module @m {
  gpu.func @bad_registers() kernel {
    // expected-error @+1 {{register counts lie in [24, 256] and are multiples of 8 (setmaxnreg), got 230}}
    attn_gpu.warp_specialize consumers(1) registers [230, 24] {
      gpu.barrier
    } producer {
      gpu.barrier
    }
    gpu.return
  }
}

// -----

gpu.module @m {
  gpu.func @no_consumers() kernel {
    // expected-error @+1 {{attribute 'consumers' failed to satisfy constraint}}
    attn_gpu.warp_specialize consumers(0) {
      gpu.barrier
    } producer {
      gpu.barrier
    }
    gpu.return
  }
}

// -----

gpu.module @m {
  gpu.func @turn_alone() kernel {
    // expected-error @+1 {{takes turns among consumer warpgroups: it lies in the consumer region of an attn_gpu.warp_specialize}}
    attn_gpu.turn wait
    gpu.return
  }
}

// -----

gpu.module @m {
  gpu.func @turn_one_consumer() kernel {
    attn_gpu.warp_specialize consumers(1) {
      // expected-error @+1 {{needs two or more consumer warpgroups to take turns, got 1}}
      attn_gpu.turn pass
    } producer {
      gpu.barrier
    }
    gpu.return
  }
}

// -----

gpu.module @cluster_publish_scratch {
  gpu.func @k(%x: tensor<64xf32, #attn_gpu.frag<rows>>, %s: memref<32xf32, #gpu.address_space<workgroup>>, %i: index) kernel
      attributes {nvvm.cluster_dim = array<i32: 4, 1, 1>} {
    // expected-error @+1 {{sums f32 rows through a scratch vector of at least one entry per row}}
    attn_gpu.cluster_publish %x, %s[%i] : tensor<64xf32, #attn_gpu.frag<rows>>, memref<32xf32, #gpu.address_space<workgroup>>
    gpu.return
  }
}

// -----

gpu.module @cluster_gather_no_cluster {
  gpu.func @k(%s: memref<64xf32, #gpu.address_space<workgroup>>, %i: index) kernel {
    // expected-error @+1 {{needs a kernel launched in clusters (nvvm.cluster_dim on its gpu.func)}}
    %r = attn_gpu.cluster_gather %s[%i] : memref<64xf32, #gpu.address_space<workgroup>> -> tensor<64xf32, #attn_gpu.frag<rows>>
    gpu.return
  }
}

// -----

gpu.module @cluster_gather_acc {
  gpu.func @k(%s: memref<64xf32, #gpu.address_space<workgroup>>, %i: index) kernel
      attributes {nvvm.cluster_dim = array<i32: 2, 1, 1>} {
    // expected-error @+1 {{the rows must be a fragment of layout #attn_gpu.frag<rows>}}
    %r = attn_gpu.cluster_gather %s[%i] : memref<64xf32, #gpu.address_space<workgroup>> -> tensor<64x8xf32, #attn_gpu.frag<acc>>
    gpu.return
  }
}

// -----

gpu.module @cluster_sync_no_cluster {
  gpu.func @k() kernel {
    // expected-error @+1 {{needs a kernel launched in clusters}}
    attn_gpu.cluster_sync
    gpu.return
  }
}

// -----

func.func @score_grad_norms_results(%s: tensor<16x16xf32, #attn_gpu.frag<acc>>, %n: index,
                                    %qn: memref<16xf32>, %kn: memref<16xf32>) {
  // expected-error @+1 {{returns 3 tile(s) of the dot products' type (the gradients of dot, nq, nk)}}
  %r = attn_gpu.score_grad %s, %s[%n, %n, %n, %n] below %n, %n norms %qn, %kn
      : tensor<16x16xf32, #attn_gpu.frag<acc>> norms memref<16xf32>, memref<16xf32>
      -> tensor<16x16xf32, #attn_gpu.frag<acc>> {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32, %nq: f32, %nk: f32, %ds: f32):
    attn_gpu.yield %ds, %ds, %ds : f32, f32, f32
  }
  return
}

// -----

func.func @score_grad_more_results(%s: tensor<16x16xf32, #attn_gpu.frag<acc>>, %n: index) {
  // expected-error @+1 {{returns 2 tile(s) of the dot products' type}}
  %r = attn_gpu.score_grad %s, %s more %s[%n, %n, %n, %n] below %n, %n
      : tensor<16x16xf32, #attn_gpu.frag<acc>> more tensor<16x16xf32, #attn_gpu.frag<acc>>
      -> tensor<16x16xf32, #attn_gpu.frag<acc>> {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %y0: f32, %y1: f32, %g: f32):
    attn_gpu.yield %g : f32
  }
  return
}

// -----

func.func @score_grad_more_args(%s: tensor<16x16xf32, #attn_gpu.frag<acc>>, %n: index) {
  // expected-error @+1 {{takes a region of (b, h, i, j, dot, more..., ds)}}
  %r:2 = attn_gpu.score_grad %s, %s more %s[%n, %n, %n, %n] below %n, %n
      : tensor<16x16xf32, #attn_gpu.frag<acc>> more tensor<16x16xf32, #attn_gpu.frag<acc>>
      -> tensor<16x16xf32, #attn_gpu.frag<acc>>, tensor<16x16xf32, #attn_gpu.frag<acc>> {
  ^bb0(%b: index, %h: index, %i: index, %j: index, %y0: f32, %g: f32):
    attn_gpu.yield %g, %g : f32, f32
  }
  return
}

// -----

func.func @decay_grad_args(%s: memref<?x?x?xf32>, %n: index) {
  // expected-error @+1 {{takes a region of (b, h, t, g): three indices and an f32}}
  attn_gpu.decay_grad %s[%n, %n] of %n below %n, %n : memref<?x?x?xf32> {
  ^bb0(%b: index, %h: index, %g: f32):
    attn_gpu.yield
  }
  return
}

// -----

func.func @decay_grad_yields(%s: memref<?x?x?xf32>, %n: index) {
  // expected-error @+1 {{'decay_grad' region yields nothing (it accumulates)}}
  attn_gpu.decay_grad %s[%n, %n] of %n below %n, %n : memref<?x?x?xf32> {
  ^bb0(%b: index, %h: index, %t: index, %g: f32):
    attn_gpu.yield %g : f32
  }
  return
}
