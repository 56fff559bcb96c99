#include "cuda/device.h"

#include <string>

#include "cuda/cuda_check.h"

namespace mother::cuda {

namespace {
DeviceInfo describe(int i) {
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, i), "cudaGetDeviceProperties");
  DeviceInfo d;
  d.index = i;
  d.name = p.name;
  d.memory_bytes = p.totalGlobalMem;
  d.compute_capability = std::to_string(p.major) + "." + std::to_string(p.minor);
  d.sm_count = p.multiProcessorCount;
  d.max_smem_optin = p.sharedMemPerBlockOptin;
  return d;
}
}  // namespace

std::vector<DeviceInfo> list_devices() {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) out.push_back(describe(i));
  return out;
}

DeviceInfo use_device(int index) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (count == 0) throw Error("E_CUDA_NO_DEVICE", "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)");
  if (index < 0 || index >= count)
    throw Error("E_CUDA_NO_DEVICE", "CUDA device " + std::to_string(index) + " does not exist (" +
                                        std::to_string(count) + " visible)");
  check(cudaSetDevice(index), "cudaSetDevice");
  return describe(index);
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}

Event::Event() { check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreate"); }
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}

static std::string sized(const char* what, size_t bytes) {
  return std::string(what) + " (" + std::to_string(bytes) + " bytes)";
}

DeviceBuffer::DeviceBuffer(size_t bytes, const char* what) : bytes_(bytes) {
  if (bytes == 0) return;
  check(cudaMalloc(&p_, bytes), ("cudaMalloc for " + sized(what, bytes)).c_str());
}
DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFree(p_);
    p_ = o.p_, bytes_ = o.bytes_;
    o.p_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes, const char* what) : bytes_(bytes) {
  if (bytes == 0) return;
  check(cudaHostAlloc(&p_, bytes, cudaHostAllocDefault), ("cudaHostAlloc for " + sized(what, bytes)).c_str());
}
PinnedBuffer::~PinnedBuffer() {
  if (p_) cudaFreeHost(p_);
}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFreeHost(p_);
    p_ = o.p_, bytes_ = o.bytes_;
    o.p_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

}  // namespace mother::cuda
