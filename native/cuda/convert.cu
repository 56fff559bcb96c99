// convert: widens F16 / BF16 / F64 chunks to float32 on the device, so the host ships tensors as
// stored (half the PCIe bytes for 16-bit models) and the pairwise kernel reads one type.
#include <cuda_fp16.h>

#include "cuda/cuda_check.h"
#include "cuda/kernels.cuh"

namespace mother::cuda {
namespace {

__device__ __forceinline__ float widen(uint16_t v, DType t) {
  // BF16 is the top half of a float32: the shift is exact, NaN payloads included.
  return t == DType::F16 ? __half2float(__ushort_as_half(v)) : __uint_as_float(uint32_t(v) << 16);
}

__global__ void widen16_kernel(const uint16_t* __restrict__ src, float* __restrict__ dst, size_t n, DType t) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = widen(src[i], t);
}

__global__ void narrow64_kernel(const double* __restrict__ src, float* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = __double2float_rn(src[i]);
}

}  // namespace

void convert_to_f32(DType type, const void* src, float* dst, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (type == DType::F32) {
    check(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync(f32)");
    return;
  }
  const int block = 256;
  const size_t blocks = (n + block - 1) / block;
  const unsigned grid = unsigned(blocks < 65536 ? blocks : 65536);
  if (type == DType::F64)
    narrow64_kernel<<<grid, block, 0, stream>>>(static_cast<const double*>(src), dst, n);
  else
    widen16_kernel<<<grid, block, 0, stream>>>(static_cast<const uint16_t*>(src), dst, n, type);
  check_launch("convert kernel");
}

}  // namespace mother::cuda
