// Every CUDA runtime call goes through check(): a failure becomes a mother::Error whose code says
// what kind of failure it was (no device, driver, out of memory, kernel) and whose message carries
// the CUDA error string. Never exit, never abort: JavaScript gets the error.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "common/error.h"

namespace mother::cuda {

inline const char* error_code_for(cudaError_t e) {
  switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
      return "E_CUDA_NO_DEVICE";
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorStubLibrary:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
      return "E_CUDA_DRIVER";
    case cudaErrorMemoryAllocation:
      return "E_CUDA_OOM";
    default:
      return "E_CUDA_KERNEL";
  }
}

inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::string msg = std::string("CUDA ") + what + " failed: " + cudaGetErrorString(e) + " (" +
                    cudaGetErrorName(e) + ")";
  if (e == cudaErrorStubLibrary || e == cudaErrorInsufficientDriver)
    msg += "; the NVIDIA driver (libcuda.so.1) is missing or older than this CUDA 13 runtime needs (>= 580)";
  // Clear the sticky-free error state so later calls in this thread report their own errors.
  (void)cudaGetLastError();
  throw Error(error_code_for(e), msg);
}

// After a kernel launch: launch-configuration errors show up here.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace mother::cuda
