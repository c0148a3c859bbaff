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
  // expected-error @+1 {{needs b of [N, K] = [64, 128] (+8 padding)}}
  %s = attn_gpu.mma %a, %k, %acc {transpose_b} : tensor<64x128xbf16, #attn_gpu.frag<operand_a>>, !k, tensor<64x64xf32, #attn_gpu.frag<acc>> -> tensor<64x64xf32, #attn_gpu.frag<acc>>
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
