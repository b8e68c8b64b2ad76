#include "bundle/weights_file.h"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bundle/weights_header.h"
#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

// LibTorch's type of each weight dtype (weights_header.h's table).
torch::ScalarType scalar_type(WeightDtype dtype) {
  switch (dtype) {
    case WeightDtype::kF32:
      return torch::kFloat32;
    case WeightDtype::kF16:
      return torch::kFloat16;
    case WeightDtype::kBF16:
      return torch::kBFloat16;
    case WeightDtype::kF64:
      return torch::kFloat64;
    case WeightDtype::kI64:
      return torch::kInt64;
    case WeightDtype::kI32:
      return torch::kInt32;
    case WeightDtype::kI16:
      return torch::kInt16;
    case WeightDtype::kI8:
      return torch::kInt8;
    case WeightDtype::kU8:
      return torch::kUInt8;
    case WeightDtype::kBool:
      return torch::kBool;
  }
  throw std::logic_error("scalar_type: a weight dtype without a LibTorch type");
}

constexpr int64_t kCopyChunk = int64_t{64} << 20;   // bytes per host-to-device copy
constexpr int64_t kStagedPiece = int64_t{8} << 20;  // bytes per pinned buffer (kStaged)

// Threads for one file's staged copy: the three modules load at once, so a quarter of the cores
// each, from 1 to 4.
int staged_threads() { return static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency() / 4, 1, 4)); }

void check_cuda(cudaError_t status, const char* step) {
  if (status != cudaSuccess) {
    throw ModelError(std::string("copying weights to the GPU through pinned memory: ") + step +
                     " failed: " + cudaGetErrorString(status));
  }
}

// One thread's way to the device in staged_copy: a stream and two pinned buffers, each with an
// event that says when the device has read it.
class CudaLane {
 public:
  CudaLane() = default;
  CudaLane(const CudaLane&) = delete;
  CudaLane& operator=(const CudaLane&) = delete;
  ~CudaLane() {
    if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);  // no buffer is freed while read
    for (int i = 0; i < 2; ++i) {
      if (read_[i] != nullptr) (void)cudaEventDestroy(read_[i]);
      if (buffer_[i] != nullptr) (void)cudaFreeHost(buffer_[i]);
    }
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  void open(int device, int64_t bytes) {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    // The destination was allocated on LibTorch's default stream, which this lane's stream does not
    // wait for: whatever was queued there before is over first.
    check_cuda(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    for (int i = 0; i < 2; ++i) {
      check_cuda(cudaHostAlloc(&buffer_[i], static_cast<size_t>(bytes), cudaHostAllocDefault), "cudaHostAlloc");
      check_cuda(cudaEventCreateWithFlags(&read_[i], cudaEventDisableTiming), "cudaEventCreateWithFlags");
    }
  }
  // Copies `n` bytes at `source` to the device address `target` through the buffer the device read
  // longest ago (waiting until it has).
  void copy(unsigned char* target, const unsigned char* source, int64_t n) {
    const int b = next_;
    next_ ^= 1;
    if (pending_[b]) check_cuda(cudaEventSynchronize(read_[b]), "cudaEventSynchronize");
    std::memcpy(buffer_[b], source, static_cast<size_t>(n));
    check_cuda(cudaMemcpyAsync(target, buffer_[b], static_cast<size_t>(n), cudaMemcpyHostToDevice, stream_),
               "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(read_[b], stream_), "cudaEventRecord");
    pending_[b] = true;
  }
  void finish() {
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    pending_[0] = pending_[1] = false;
  }

 private:
  cudaStream_t stream_ = nullptr;
  void* buffer_[2] = {nullptr, nullptr};
  cudaEvent_t read_[2] = {nullptr, nullptr};
  bool pending_[2] = {false, false};
  int next_ = 0;
};

// A whole file mapped copy-on-write: weights on the CPU point into it, and each holds it alive.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, size);
  }
  const unsigned char* bytes() const { return static_cast<const unsigned char*>(base); }
};

std::shared_ptr<Mapping> map_file(const std::string& name) {
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw missing_bundle_file(name);
    throw ModelError(name + ": cannot open the weights file: " + std::strerror(errno));
  }
  struct stat st {};
  auto mapping = std::make_shared<Mapping>();
  int err = ::fstat(fd, &st) == 0 ? 0 : errno;
  if (err == 0 && st.st_size < 8) {  // nothing to map: the header parser says what is wrong
    ::close(fd);
    parse_weights_header(nullptr, static_cast<uint64_t>(st.st_size), name);
  }
  if (err == 0) {
    mapping->size = static_cast<size_t>(st.st_size);
    mapping->base = ::mmap(nullptr, mapping->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (mapping->base == MAP_FAILED) err = errno;
  }
  ::close(fd);
  if (err != 0) throw ModelError(name + ": cannot map the weights file: " + std::strerror(err));
  ::madvise(mapping->base, mapping->size, MADV_WILLNEED);  // start reading a cold file now
  return mapping;
}

}  // namespace

void staged_copy(const unsigned char* source, int64_t size, torch::Tensor& destination, int64_t piece_bytes,
                 int threads) {
  if (!destination.is_contiguous() || destination.scalar_type() != torch::kUInt8 || destination.numel() < size ||
      piece_bytes <= 0) {
    throw std::logic_error("staged_copy: the destination must be a contiguous uint8 tensor that holds the bytes");
  }
  if (size <= 0) return;
  unsigned char* target = destination.data_ptr<uint8_t>();
  const bool cuda = destination.is_cuda();
  const int device = cuda ? destination.get_device() : -1;
  const int64_t pieces = (size + piece_bytes - 1) / piece_bytes;
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, pieces));
  std::atomic<int64_t> next{0};  // the next piece to copy, taken by whichever thread is free
  std::mutex failure_mutex;
  std::exception_ptr failure;
  auto work = [&] {
    try {
      CudaLane lane;
      if (cuda) lane.open(device, std::min(piece_bytes, size));
      for (int64_t i = next.fetch_add(1); i < pieces; i = next.fetch_add(1)) {
        const int64_t at = i * piece_bytes, n = std::min(piece_bytes, size - at);
        if (cuda) {
          lane.copy(target + at, source + at, n);
        } else {
          std::memcpy(target + at, source + at, static_cast<size_t>(n));
        }
      }
      if (cuda) lane.finish();
    } catch (...) {
      next.store(pieces);  // the others stop after their piece
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads; ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads: the pieces are shared out among those there are
    }
  }
  work();
  for (std::thread& h : helpers) h.join();
  if (failure) std::rethrow_exception(failure);
}

void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device) {
  attach_weights(module, file, device, device.is_cpu() ? WeightsPlacement::kMapped : WeightsPlacement::kCopied);
}

void attach_weights(torch::jit::Module& module, const std::filesystem::path& file, const torch::Device& device,
                    WeightsPlacement placement) {
  if (placement == WeightsPlacement::kMapped && !device.is_cpu()) {
    throw std::logic_error("attach_weights: mapped weights are for the CPU");
  }
  const bool mapped = placement == WeightsPlacement::kMapped;
  const std::string name = file.string();
  const std::shared_ptr<Mapping> mapping = map_file(name);
  WeightsHeader header = parse_weights_header(mapping->bytes(), mapping->size, name);
  std::map<std::string, WeightEntry>& entries = header.weights;

  std::vector<std::pair<std::string, torch::Tensor>> wanted;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) wanted.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) wanted.emplace_back(b.name, b.value);
  for (const auto& [key, placeholder] : wanted) {
    const auto found = entries.find(key);
    if (found == entries.end()) corrupt_weights_file(name, "has no weight \"" + key + "\", which the module needs");
    const WeightEntry& e = found->second;
    if (scalar_type(e.dtype) != placeholder.scalar_type() || c10::IntArrayRef(e.shape) != placeholder.sizes()) {
      corrupt_weights_file(name, "weight \"" + key + "\" is " + c10::toString(scalar_type(e.dtype)) +
                                     c10::str(c10::IntArrayRef(e.shape)) + ", the module's is " +
                                     c10::toString(placeholder.scalar_type()) + c10::str(placeholder.sizes()));
    }
  }
  if (entries.size() != wanted.size()) {
    for (const auto& [key, placeholder] : wanted) entries.erase(key);
    corrupt_weights_file(name, "holds weights the module does not have, such as \"" + entries.begin()->first + "\"");
  }

  const uint64_t data_size = mapping->size - header.data_start;
  unsigned char* data = static_cast<unsigned char*>(mapping->base) + header.data_start;
  torch::Tensor on_device;  // CUDA: the file's data, copied in one piece
  if (!mapped && data_size > 0) {
    on_device = torch::empty({static_cast<int64_t>(data_size)}, torch::dtype(torch::kUInt8).device(device));
    if (placement == WeightsPlacement::kStaged) {
      staged_copy(data, static_cast<int64_t>(data_size), on_device, kStagedPiece, staged_threads());
    } else {
      for (int64_t at = 0; at < static_cast<int64_t>(data_size); at += kCopyChunk) {
        const int64_t n = std::min<int64_t>(kCopyChunk, static_cast<int64_t>(data_size) - at);
        on_device.narrow(0, at, n).copy_(torch::from_blob(data + at, {n}, torch::kUInt8));
      }
    }
  }
  for (const auto& [key, placeholder] : wanted) {
    const WeightEntry& e = entries.at(key);
    torch::Tensor weight;
    if (mapped) {
      weight = torch::from_blob(
          data + e.begin, e.shape, [mapping](void*) {}, torch::dtype(scalar_type(e.dtype)));
    } else {
      weight = torch::empty(on_device.defined() ? c10::IntArrayRef{0} : c10::IntArrayRef(e.shape),
                            torch::dtype(scalar_type(e.dtype)).device(device));
      if (on_device.defined()) {
        const auto item = static_cast<int64_t>(e.element_bytes);
        weight.set_(on_device.storage(), static_cast<int64_t>(e.begin) / item, e.shape);
      }
    }
    // The owner of `key` ("down_blocks.0.resnets.0.conv1.weight") takes the weight in the placeholder's place.
    torch::jit::Module owner = module;
    std::string::size_type from = 0, dot = 0;
    while ((dot = key.find('.', from)) != std::string::npos) {
      owner = owner.attr(key.substr(from, dot - from)).toModule();
      from = dot + 1;
    }
    owner.setattr(key.substr(from), weight);
  }
}

}  // namespace sdinterp
