// attn-gpu-select-strategy: flash for query tiles over key tiles, chunk for attn-chunk's form
// on tensor cores, scan for a chunk step whose head or value dim is not a multiple of 16,
// backward for attn-grad's <name>_grad (the forward beside it stays flash).
// RUN: attnc %specs/alibi.attn --emit=tiled -o %t.flash.mlir
// RUN: attnc-opt %t.flash.mlir --attn-gpu-select-strategy | FileCheck %s --check-prefix=FLASH
// RUN: attnc %specs/retnet.attn --emit=tiled -o %t.chunk.mlir
// RUN: attnc-opt %t.chunk.mlir --attn-gpu-select-strategy | FileCheck %s --check-prefix=CHUNK
// RUN: attnc %specs/s4d.attn --emit=tiled -o %t.scan.mlir
// RUN: attnc-opt %t.scan.mlir --attn-gpu-select-strategy | FileCheck %s --check-prefix=SCAN
// RUN: attnc %specs/alibi.attn --backward --emit=tiled -o %t.grad.mlir
// RUN: attnc-opt %t.grad.mlir --attn-gpu-select-strategy | FileCheck %s --check-prefix=GRAD

// FLASH: func.func @alibi({{.*}}) attributes {attn_gpu.strategy = #attn_gpu.strategy<flash>
// CHUNK: func.func @retnet({{.*}}) attributes {attn_gpu.strategy = #attn_gpu.strategy<chunk>
// SCAN: func.func @s4d({{.*}}) attributes {attn_gpu.strategy = #attn_gpu.strategy<scan>
// GRAD: func.func @alibi({{.*}}) attributes {attn_gpu.strategy = #attn_gpu.strategy<flash>
// GRAD: func.func @alibi_grad({{.*}}) attributes {attn.grad_of = @alibi, attn_gpu.strategy = #attn_gpu.strategy<backward>
