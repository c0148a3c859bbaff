// The cluster ops (FragmentOpsToNVVM.cpp). cluster_publish: lane 0 of each quad writes its
// two rows at slot + row, then every thread arrives on the cluster barrier (release).
// cluster_gather: wait (acquire), then each row's entries in the cluster's 4 blocks
// (nvvm.mapa to ranks 0..3, loads from the shared_cluster space), summed in rank order.
// cluster_sync: arrive and wait.
// RUN: attnc-opt %s --attn-gpu-to-nvvm | FileCheck %s --implicit-check-not=attn_gpu.
// The whole kernel (TransNormer on sm_90a: 4 slices of 32 value channels a cluster):
// RUN: rm -rf %t && mkdir -p %t
// RUN: attnc compile %specs/transnormer.attn --emit=ptx --chip=sm_90a -o %t
// RUN: FileCheck %s --check-prefix=PTX < %t/transnormer.ptx
// RUN: FileCheck %s --check-prefix=MANIFEST < %t/transnormer.json

#rows = #attn_gpu.frag<rows>

// CHECK-LABEL: gpu.func @rms
// CHECK: %[[LANE0:.*]] = arith.cmpi eq, %{{.*}}, %c0
// CHECK: scf.if %[[LANE0]] {
// CHECK: %[[AT0:.*]] = arith.addi %[[SLOT:arg3]], %{{.*}} : index
// CHECK-NEXT: memref.store %{{.*}}, %arg1[%[[AT0]]] : memref<128xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.*}}, %arg1[%{{.*}}] : memref<128xf32, #gpu.address_space<workgroup>>
// CHECK-NEXT: }
// CHECK-NEXT: nvvm.cluster.arrive
// CHECK-NOT: nvvm.cluster
// CHECK: nvvm.cluster.wait
// CHECK: %[[ROW0:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<3>
// CHECK-NEXT: %[[P0:.*]] = nvvm.mapa %[[ROW0]], %c0_i32 : !llvm.ptr<3> -> !llvm.ptr<7>
// CHECK-NEXT: %[[V0:.*]] = llvm.load %[[P0]] : !llvm.ptr<7> -> f32
// CHECK-NEXT: %[[P1:.*]] = nvvm.mapa %[[ROW0]], %c1_i32
// CHECK-NEXT: %[[V1:.*]] = llvm.load %[[P1]]
// CHECK-NEXT: %[[S01:.*]] = arith.addf %[[V0]], %[[V1]]
// CHECK-NEXT: %[[P2:.*]] = nvvm.mapa %[[ROW0]], %c2_i32
// CHECK-NEXT: %[[V2:.*]] = llvm.load %[[P2]]
// CHECK-NEXT: %[[S012:.*]] = arith.addf %[[S01]], %[[V2]]
// CHECK-NEXT: %[[P3:.*]] = nvvm.mapa %[[ROW0]], %c3_i32
// CHECK-NEXT: %[[V3:.*]] = llvm.load %[[P3]]
// CHECK-NEXT: %[[SUM0:.*]] = arith.addf %[[S012]], %[[V3]]
// The thread's second row (8 below the first): the same over its entries.
// CHECK: %[[ROW1:.*]] = llvm.inttoptr
// CHECK-COUNT-4: nvvm.mapa %[[ROW1]]
// CHECK: %[[SUM1:.*]] = arith.addf
// CHECK: "rsqrt.approx.f32 $0, $1;", "=f,f" %[[SUM0]] : (f32) -> f32
// CHECK-NEXT: "rsqrt.approx.f32 $0, $1;", "=f,f" %[[SUM1]] : (f32) -> f32
// CHECK: nvvm.cluster.arrive
// CHECK-NEXT: nvvm.cluster.wait
// CHECK-NEXT: gpu.return
// MANIFEST: "value_slice": 32
// MANIFEST: "cluster": [
// MANIFEST-NEXT: 4,
// MANIFEST-NEXT: 1,
// MANIFEST-NEXT: 1
// PTX: .explicitcluster
// PTX-NEXT: .reqnctapercluster 4, 1, 1
// In the chunk loop (the publish's arrive laid out before the gather's branch), then after it.
// PTX: barrier.cluster.arrive;
// PTX: barrier.cluster.wait;
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: barrier.cluster.wait;
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: ld.shared::cluster.b32
// PTX: barrier.cluster.arrive;
// PTX-NEXT: barrier.cluster.wait;
// PTX-NOT: barrier.cluster
gpu.module @m {
  gpu.func @rms(%rowsIn: memref<64xf32, #gpu.address_space<workgroup>>, %squares: memref<128xf32, #gpu.address_space<workgroup>>,
                %out: memref<?xi1>, %slot: index, %other: index) kernel
      attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.cluster_dim = array<i32: 4, 1, 1>} {
    %x = attn_gpu.load_rows %rowsIn : memref<64xf32, #gpu.address_space<workgroup>> -> tensor<64xf32, #rows>
    attn_gpu.cluster_publish %x, %squares[%slot] : tensor<64xf32, #rows>, memref<128xf32, #gpu.address_space<workgroup>>
    %sum = attn_gpu.cluster_gather %squares[%other] : memref<128xf32, #gpu.address_space<workgroup>> -> tensor<64xf32, #rows>
    %r = math.rsqrt %sum : tensor<64xf32, #rows>
    %ok = arith.cmpf ogt, %r, %x : tensor<64xf32, #rows>
    %all = attn_gpu.vote_all %ok : tensor<64xi1, #rows>
    %c0 = arith.constant 0 : index
    memref.store %all, %out[%c0] : memref<?xi1>
    attn_gpu.cluster_sync
    gpu.return
  }
}
