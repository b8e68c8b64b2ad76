#include "sdinterp/bundle.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/Utils.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <cuda_runtime_api.h>
#include <sys/utsname.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>

#include "bundle/package_loader.h"
#include "bundle/weights_file.h"
#include "sdinterp/compiled_package.h"
#include "sdinterp/cuda_start.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"

namespace sdinterp {
namespace fs = std::filesystem;

namespace {
// The dtypes a bundle can be exported in, by the names model.json and the exporter use.
constexpr std::pair<const char*, torch::ScalarType> kBundleDtypes[] = {
    {"float32", torch::kFloat32}, {"float16", torch::kFloat16}, {"bfloat16", torch::kBFloat16}};

// A dtype in those words ("float32"), or LibTorch's name for any other.
std::string dtype_name(torch::ScalarType dtype) {
  for (const auto& [name, value] : kBundleDtypes) {
    if (value == dtype) return name;
  }
  return dtype == torch::kFloat64 ? "float64" : c10::toString(dtype);
}

// Held by every call into LibTorch's package loader that parses a package's metadata
// (src/bundle/package_loader.h says why).
std::mutex& package_loader_lock() {
  static std::mutex lock;
  return lock;
}
}  // namespace

std::map<std::string, std::string> read_package_metadata(const std::string& path) {
  const std::lock_guard<std::mutex> one_at_a_time(package_loader_lock());
  const auto metadata = PackageLoader::load_metadata_from_package(path, "model");
  return {metadata.begin(), metadata.end()};
}

std::unique_ptr<PackageLoader> open_package(const std::string& path, c10::DeviceIndex device_index) {
  const std::lock_guard<std::mutex> one_at_a_time(package_loader_lock());
  return std::make_unique<PackageLoader>(path, "model", false, 1, device_index);
}

torch::ScalarType parse_dtype(const std::string& name) {
  std::string names;
  for (const auto& [known, value] : kBundleDtypes) {
    if (name == known) return value;
    names += names.empty() ? known : std::string(", ") + known;
  }
  throw ModelError("unknown dtype \"" + name + "\" (expected one of " + names + ")");
}

namespace {

std::string reexport_hint(const Manifest& m, const std::string& device, const std::string& dtype) {
  return "re-export the model for it: " + m.export_command(device, dtype);
}

torch::Device resolve_device(const DeviceChoice& asked, const Manifest& m, const std::string& dir) {
  const DeviceChoice chosen = asked.kind == DeviceChoice::Kind::kAuto ? parse_device(m.device) : asked;
  const std::string wanted = device_name(chosen);
  torch::Device device = chosen.kind == DeviceChoice::Kind::kCuda
                             ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(chosen.index))
                             : torch::Device(torch::kCPU);
  const std::string kind = device.is_cuda() ? "cuda" : "cpu";
  if (kind != m.device) {
    throw ModelError("bundle " + dir + " was traced for " + m.device + "/" + m.dtype + " and cannot run on " + kind +
                     " (tracing bakes the device in); " + reexport_hint(m, kind, kind == "cpu" ? "float32" : m.dtype));
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw ModelError("bundle " + dir + " was traced for cuda/" + m.dtype +
                       " but CUDA is not available here (no GPU or driver); " + reexport_hint(m, "cpu", "float32") +
                       ", or run it on a machine with a GPU");
    }
    int count = static_cast<int>(torch::cuda::device_count());
    int index = device.has_index() ? device.index() : 0;
    if (index >= count) {
      const std::string last = "cuda:" + std::to_string(count - 1);
      throw ConfigError("--device " + wanted + ": this machine has " + count_text(count, "CUDA device") + " (" +
                        (count == 1 ? last : "cuda:0 to " + last) + ")");
    }
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return device;
}

std::string first_line(std::string what) {
  auto newline = what.find('\n');
  if (newline != std::string::npos) what.resize(newline);
  return what;
}

// Loads a module file; in a format version 3 bundle (weights_beside) its weights come from the
// weights file beside it (attach_weights), which takes `weights_seconds`.
torch::jit::Module load_module(const fs::path& path, const torch::Device& device, bool weights_beside,
                               WeightsPlacement placement, double& weights_seconds) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw missing_bundle_file(path.string());
  }
  torch::jit::Module module;
  try {
    // A CUDA bundle on cuda:0 is loaded without map_location: its weights come back on the GPU
    // and the graph's shape constants stay on the CPU (see the GPU notes: a map_location moves
    // them too, each shape computation then synchronises and CUDA graph capture fails).
    module = (device.is_cpu() || device.index() == 0) ? torch::jit::load(path.string())
                                                      : torch::jit::load(path.string(), device);
    module.eval();
  } catch (const c10::Error& e) {
    throw ModelError(path.string() + ": cannot load TorchScript module (corrupt or not a TorchScript file): " +
                     first_line(e.what_without_backtrace()));
  }
  if (weights_beside) {
    const auto t = std::chrono::steady_clock::now();
    attach_weights(module, path.parent_path() / weights_file(path.filename().string()), device, placement);
    weights_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
  return module;
}

// A version 1 bundle's UNet was traced at latent sides that are multiples of its down factor:
// diffusers then upsamples by a fixed factor of 2, which the trace baked in, so it only takes sides
// that are multiples of 2^(number of upsamplers) (diffusers' up_blocks.N.upsamplers).
int traced_latent_multiple(const torch::jit::Module& unet) {
  int upsamplers = 0;
  for (const auto& item : unet.named_modules()) {
    const std::string& name = item.name;
    const std::string leaf = name.substr(name.rfind('.') + 1);
    if (leaf == "upsamplers" && name.find("up_blocks.") != std::string::npos) ++upsamplers;
  }
  return 1 << std::min(upsamplers, 6);
}

// Checks that a loaded module's weights are on the expected device and of the expected dtype.
void check_module(const torch::jit::Module& module, const fs::path& path, const Manifest& m,
                  const torch::Device& device, torch::ScalarType dtype) {
  for (const auto& p : module.parameters()) {
    if (p.device().type() != device.type() || (p.is_floating_point() && p.scalar_type() != dtype)) {
      throw ModelError(path.string() + ": weights are " + dtype_name(p.scalar_type()) + " on " + p.device().str() +
                       " but model.json says " + m.dtype + " on " + m.device +
                       " (the bundle is inconsistent; re-export it)");
    }
    break;
  }
}

MachineFacts machine_facts(const torch::Device& device) {
  MachineFacts here;
  struct utsname u {};
  if (uname(&u) == 0) here.machine = u.machine;
  here.cpu_threads = at::get_num_threads();
  for (const auto& [name, value] : at::cpu::get_cpu_capabilities()) {
    if (value.isBool()) here.cpu[name] = value.toBool();
  }
  if (device.is_cuda()) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device.index()) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device.index()) == cudaSuccess) {
      here.cuda_compute_capability = major * 10 + minor;
    }
  }
  return here;
}

// The dtype the package was compiled for, by weight name (the package's own record; its
// constants are keyed by internal names that map to the weights' names).
std::map<std::string, c10::ScalarType> package_constant_dtypes(PackageLoader& package) {
  std::map<std::string, c10::ScalarType> out;
  torch::inductor::AOTIModelContainerRunner* runner = package.get_runner();
  if (runner == nullptr) return out;
  const auto dtypes = runner->getConstantNamesToDtypes();
  for (const auto& [internal, name] : runner->getConstantNamesToOriginalFQNs()) {
    auto it = dtypes.find(internal);
    // AOTInductor's dtype codes are c10::ScalarType's values (aoti_torch_dtype_*).
    if (it != dtypes.end()) out.emplace(name, static_cast<c10::ScalarType>(it->second));
  }
  return out;
}

// "" when `weight` can be handed to the package as it is: with user-managed constants the package
// reads the tensor's memory as the dtype, device and dense row-major layout it was compiled for,
// and checks only the device type (another dtype or layout reads garbage or out of bounds; another
// CUDA device faults). Otherwise what is wrong, as the end of a sentence.
std::string constant_unfit(const at::Tensor& weight, std::optional<c10::ScalarType> expected,
                           const torch::Device& device) {
  if (expected && weight.scalar_type() != *expected) {
    return "is " + dtype_name(weight.scalar_type()) + ", the package was compiled for " + dtype_name(*expected);
  }
  if (weight.device() != device) {
    return "is on " + weight.device().str() + ", the package runs on " + device.str();
  }
  if (!weight.is_contiguous()) return "is not laid out contiguously, as the package reads it";
  return "";
}

// What a compiled package compiles: the module's name in messages and the exporter's option that
// makes it.
struct PackageRole {
  const char* what;  // "UNet", "VAE decoder"
  const char* export_option;
};
constexpr PackageRole kUnetPackage{"UNet", "--aoti"};
constexpr PackageRole kDecoderPackage{"VAE decoder", "--aoti-vae"};

// An AOTInductor package, opened (metadata checked, its code loaded) before the TorchScript
// module it takes its weights from is ready: Bundle::load opens it beside the modules' loads.
// `package` is null, and `problem` says why, when it cannot be used.
struct OpenedPackage {
  std::unique_ptr<PackageLoader> package;
  std::string problem;
};

OpenedPackage open_compiled(const fs::path& path, const Manifest::Compiled& record, const torch::Device& device,
                            const PackageRole& role) {
  OpenedPackage out;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    out.problem =
        path.string() + ": missing file (model.json names it; re-export the bundle with " + role.export_option + ")";
    return out;
  }
  try {
    c10::InferenceMode guard;
    const auto index = device.is_cuda() ? device.index() : static_cast<c10::DeviceIndex>(-1);
    const std::string mismatch = compiled_package_mismatch(
        read_package_metadata(path.string()), device.is_cuda() ? "cuda" : "cpu", machine_facts(device), record.threads);
    if (!mismatch.empty()) {
      out.problem = path.string() + ": " + mismatch;
      return out;
    }
    out.package = open_package(path.string(), index);
  } catch (const std::exception& e) {
    out.problem = path.string() +
                  ": cannot load the AOTInductor package (made by another PyTorch, or for another "
                  "machine?): " +
                  first_line(e.what());
  }
  return out;
}

// Hands an opened package its TorchScript module's weights (the package is compiled without them:
// no second copy in memory). Returns the package, or null and why it cannot be used in `problem`.
std::unique_ptr<PackageLoader> fit_compiled(OpenedPackage opened, const fs::path& path,
                                            const Manifest::Compiled& record, const torch::jit::Module& module,
                                            const torch::Device& device, const PackageRole& role,
                                            std::string& problem) {
  if (opened.package == nullptr) {
    problem = opened.problem;
    return nullptr;
  }
  const std::string what = role.what;
  std::unique_ptr<PackageLoader> package = std::move(opened.package);
  std::unordered_map<std::string, at::Tensor> weights;
  for (const auto& p : module.named_parameters()) weights.emplace(p.name, p.value);
  for (const auto& b : module.named_buffers()) weights.emplace(b.name, b.value);
  const std::map<std::string, c10::ScalarType> dtypes = package_constant_dtypes(*package);
  std::unordered_map<std::string, at::Tensor> constants;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& name : package->get_constant_fqns()) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      problem =
          path.string() + ": needs weight " + name + ", which the TorchScript " + what + " lacks (not the same model)";
      return nullptr;
    }
    auto dtype = dtypes.find(name);
    const std::string unfit =
        constant_unfit(it->second, dtype == dtypes.end() ? std::nullopt : std::optional(dtype->second), device);
    if (!unfit.empty()) {
      problem = path.string() + ": the TorchScript " + what + "'s weight " + name + " " + unfit +
                " (not the bundle the package was compiled for; compile it again)";
      return nullptr;
    }
    constants.emplace(name, it->second);
    shapes.emplace(name, it->second.sizes().vec());
  }
  // The package trusts the tensors it is given: weights of other shapes would be read out of bounds.
  if (!record.weights_fnv1a64.empty() && weights_signature(shapes) != record.weights_fnv1a64) {
    problem = path.string() + ": compiled for a " + what +
              " whose weights have other shapes than the bundle's TorchScript " + what +
              " (not the same model; compile it again)";
    return nullptr;
  }
  try {
    // user_managed: the package uses these tensors as they are, without copying them.
    package->load_constants(constants, /*use_inactive=*/false, /*check_full_update=*/true, /*user_managed=*/true);
  } catch (const std::exception& e) {
    problem =
        path.string() + ": the TorchScript " + what + "'s weights do not fit the package: " + first_line(e.what());
    return nullptr;
  }
  return package;
}

}  // namespace

struct Bundle::Modules {
  torch::jit::Module text_encoder;
  torch::jit::Module unet;
  torch::jit::Module vae_decoder;
  std::optional<torch::jit::Module> vae_encoder;        // loaded on first use: only image-morph needs it
  std::unique_ptr<PackageLoader> compiled_unet;         // null when the bundle has none or it failed to load
  std::unique_ptr<PackageLoader> compiled_vae_decoder;  // the same for the VAE decoder's package
  // The text encoder's outputs for the last token batches it was given, newest last: jobs of a
  // batch that repeat their prompts and negatives (other seeds, other walks) skip the encoder. A
  // batch is looked up whole, so a result is the one the encoder gives for exactly that batch.
  struct EncodedText {
    std::vector<int64_t> ids;
    std::vector<int64_t> shape;
    torch::Tensor embeddings;
  };
  static constexpr size_t kEncodedTexts = 8;
  std::vector<EncodedText> encoded_texts;
  int64_t encoded_text_hits = 0;
  std::mutex encoded_texts_mutex;
};

Bundle::Bundle(std::string dir, Manifest manifest, torch::Device device)
    : dir_(std::move(dir)), manifest_(std::move(manifest)), device_(device), modules_(std::make_unique<Modules>()) {}
Bundle::Bundle(Bundle&&) noexcept = default;
Bundle& Bundle::operator=(Bundle&&) noexcept = default;
Bundle::~Bundle() = default;

namespace {
// SDINTERP_CUDNN_BENCHMARK=1 lets cuDNN time its convolution algorithms at each new input shape and
// keep the fastest (torch.backends.cudnn.benchmark in Python; off by default there and here); 0 or
// unset: its heuristics choose. A measuring switch for the GPU runs (bench/README-gpu.md): the
// timed choice can differ between processes, and so can the frames' last bits.
constexpr const char* kCudnnBenchmarkVariable = "SDINTERP_CUDNN_BENCHMARK";
// SDINTERP_PINNED_UPLOAD=1: on CUDA the weights files reach the device through pinned buffers
// filled by several threads (WeightsPlacement::kStaged) instead of one pageable copy after another;
// 0 or unset: the latter. A measuring switch for the GPU runs (bench/README-gpu.md).
constexpr const char* kPinnedUploadVariable = "SDINTERP_PINNED_UPLOAD";
// SDINTERP_SDPA_FIRST=NAME puts that scaled_dot_product_attention kernel first in LibTorch's
// priority order on CUDA (it is taken wherever it supports the call; the others follow in their
// order): for the TorchScript modules, whose attention LibTorch picks at each call. LibTorch's own
// order tries flash, memory-efficient, math, then cuDNN, so cuDNN's fused attention (the fastest on
// Hopper by PyTorch's release notes) is never taken unless named. Unset: LibTorch's order. A
// measuring switch for the GPU runs (bench/README-gpu.md); a compiled UNet's kernel is chosen when
// it is compiled (export_bundle.py --aoti-tuning cudnn-attention).
constexpr const char* kSdpaFirstVariable = "SDINTERP_SDPA_FIRST";
constexpr std::pair<const char*, at::SDPBackend> kSdpaKernels[] = {{"cudnn", at::SDPBackend::cudnn_attention},
                                                                   {"flash", at::SDPBackend::flash_attention},
                                                                   {"efficient", at::SDPBackend::efficient_attention},
                                                                   {"math", at::SDPBackend::math}};

// The kernel SDINTERP_SDPA_FIRST names, if any (ConfigError for a name not in kSdpaKernels).
std::optional<at::SDPBackend> sdpa_first() {
  std::vector<std::string> names;
  for (const auto& [name, kernel] : kSdpaKernels) names.emplace_back(name);
  const std::string chosen = env_choice(kSdpaFirstVariable, names);
  for (const auto& [name, kernel] : kSdpaKernels) {
    if (chosen == name) return kernel;
  }
  return std::nullopt;
}

// LibTorch's priority order with `first` moved to its front.
void put_sdpa_kernel_first(at::SDPBackend first) {
  std::vector<int64_t> order{static_cast<int64_t>(first)};
  for (const at::SDPBackend kernel : at::globalContext().sDPPriorityOrder()) {
    if (kernel != first) order.push_back(static_cast<int64_t>(kernel));
  }
  at::globalContext().setSDPPriorityOrder(order);
}

// How the weights files reach the modules on `device`.
WeightsPlacement weights_placement(const torch::Device& device) {
  if (device.is_cpu()) return WeightsPlacement::kMapped;
  return env_switch(kPinnedUploadVariable, false) ? WeightsPlacement::kStaged : WeightsPlacement::kCopied;
}

// The first use of CUDA's libraries in a process costs its first job: the context, cuBLAS's handle
// and workspace, cuDNN's handle and engine libraries, and the first launch of each kernel (loaded
// lazily). Bundle::load makes a few tiny calls of the ops the models use on a thread of their own,
// beside the modules' reads and copies. Nothing they leave changes a later result: cuDNN's and
// cuBLAS's choices depend on the shapes of each call (without SDINTERP_CUDNN_BENCHMARK), not on
// earlier calls. A failure here is left for the models' own calls to report. SDINTERP_CUDA_WARM_UP=0
// (kCudaWarmUpVariable, sdinterp/cuda_start.h) leaves it out: to measure what it saves.
void warm_up_cuda(const torch::Device& device, torch::ScalarType dtype) {
  c10::InferenceMode guard;
  try {
    const auto options = torch::TensorOptions().device(device).dtype(dtype);
    torch::Tensor image = torch::ones({1, 8, 8, 8}, options);
    image = torch::conv2d(image, torch::ones({8, 8, 3, 3}, options), {}, 1, 1);
    image = torch::silu(torch::group_norm(image, 4));
    image = torch::upsample_nearest2d(image, std::vector<int64_t>{16, 16});
    torch::Tensor tokens = torch::ones({16, 64}, options);
    tokens = torch::gelu(torch::layer_norm(torch::linear(tokens, torch::ones({64, 64}, options)), {64}));
    const torch::Tensor heads = tokens.view({1, 1, 16, 64});
    tokens = at::scaled_dot_product_attention(heads, heads, heads).view({16, 64}).softmax(-1);
    (void)(image.sum() + tokens.sum()).item<float>();  // waits for the device
  } catch (const std::exception&) {
  }
}
}  // namespace

void configure_torch(const Manifest& m) {
  const bool cudnn_benchmark = env_switch(kCudnnBenchmarkVariable, false);
  (void)env_switch(kCudaWarmUpVariable, true);  // a bad value is refused on any device, as the other
  (void)env_switch(kPinnedUploadVariable, false);
  const std::optional<at::SDPBackend> attention_first = sdpa_first();
  if (m.device != "cuda") return;
  at::globalContext().setBenchmarkCuDNN(cudnn_benchmark);
  if (attention_first) put_sdpa_kernel_first(*attention_first);
  // TorchScript's profiling executor specialises and compiles each graph at the second call of
  // every new input shape: on an H200 the first job of a process spent 3.5 s more sampling than
  // the next (SD-1.5, batch 60). Unoptimised graphs skip that and run at eager speed (the GPU
  // probe: 173 ms against 168 ms per batch-60 UNet call, 16.0 against 12.5 ms at batch 2).
  torch::jit::setGraphExecutorOptimize(false);
  if (parse_dtype(m.dtype) == torch::kFloat32) {
    // A float32 bundle computes in float32: LibTorch lets cuDNN convolutions use TF32 by default
    // (10-bit mantissa), which moves frames away from the CPU's and diffusers' float32 ones.
    // Half-precision bundles are the fast path on a GPU.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
}

Bundle Bundle::load(const std::string& dir, const DeviceChoice& device, UnetEngine engine) {
  return load(dir, load_manifest(dir), device, engine);
}

Bundle Bundle::load(const std::string& dir, Manifest m, const DeviceChoice& device_choice, UnetEngine engine) {
  if (m.attention == "sdpa" && TORCH_VERSION_MAJOR < 2) {
    throw ModelError("bundle " + dir + " uses scaled_dot_product_attention, which this LibTorch " + TORCH_VERSION +
                     " lacks; " + reexport_hint(m, m.device, m.dtype) + " --compat");
  }
  torch::Device device = resolve_device(device_choice, m, dir);
  const fs::path root(dir);
  // The tokenizer's files (1.4 MB of vocabulary and merges, tens of milliseconds) are read beside
  // the modules' loads; its errors are still the first reported.
  auto tokenizer = std::async(std::launch::async, [dir, spec = m] { return load_bundle_tokenizer(dir, spec); });
  Bundle bundle(dir, std::move(m), device);
  const Manifest& man = bundle.manifest_;
  bundle.dtype_ = parse_dtype(man.dtype);
  bundle.engine_ = engine;
  c10::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  // The three modules load at once: reading and unpickling one overlaps another's (and on CUDA its
  // copies to the device). Each is its own archive and compilation unit. The first failure in
  // this order is reported, after every load has ended.
  auto load_timed = [&](const fs::path& path, double& seconds, double& weights_seconds) {
    return std::async(std::launch::async, [path, &device, &seconds, &weights_seconds, seconds_since,
                                           beside = man.weights_beside(), placement = weights_placement(device)] {
      c10::InferenceMode inner;
      const auto t = std::chrono::steady_clock::now();
      torch::jit::Module module = load_module(path, device, beside, placement, weights_seconds);
      seconds = seconds_since(t);
      return module;
    });
  };
  LoadSeconds& times = bundle.load_seconds_;
  // On CUDA the device's context is made at once, beside the reads and unpickling, rather than
  // when the first weight reaches the device; then the first use of CUDA's libraries
  // (warm_up_cuda) overlaps the rest of the load.
  std::future<void> context;
  if (device.is_cuda()) {
    context = std::async(std::launch::async, [device, dtype = bundle.dtype_, &times, start, seconds_since] {
      c10::InferenceMode inner;
      (void)torch::empty({1}, torch::TensorOptions().device(device));
      times.cuda_context = seconds_since(start);
      if (env_switch(kCudaWarmUpVariable, true)) {
        const auto t = std::chrono::steady_clock::now();
        warm_up_cuda(device, dtype);
        times.cuda_warm_up = seconds_since(t);
      }
    });
  }
  auto text_encoder = load_timed(root / man.text_encoder.file, times.text_encoder, times.weights.text_encoder);
  auto unet = load_timed(root / man.unet.file, times.unet, times.weights.unet);
  auto vae_decoder = load_timed(root / man.vae.decoder, times.vae_decoder, times.weights.vae_decoder);
  // kAuto uses the packages on CUDA too since the H100 run of 2026-12-06: the UNet's crash there
  // came from opening the runtime RTLD_LOCAL (src/io/module_loader.cpp), and through its package the
  // golden frames held (8/8 runs) with warm sampling 10% faster than TorchScript's. kTorchScript
  // runs the TorchScript modules only. A package is opened beside the modules' loads (its weights
  // are handed over once its module is loaded).
  const bool wanted = engine == UnetEngine::kCompiled || engine == UnetEngine::kAuto;
  auto open_timed = [&](const Manifest::Compiled& record, const PackageRole& role, double& seconds) {
    std::future<OpenedPackage> opened;
    if (wanted && !record.file.empty()) {
      opened =
          std::async(std::launch::async, [path = root / record.file, &record, &role, device, &seconds, seconds_since] {
            const auto t = std::chrono::steady_clock::now();
            OpenedPackage out = open_compiled(path, record, device, role);
            seconds = seconds_since(t);
            return out;
          });
    }
    return opened;
  };
  auto unet_package = open_timed(man.unet.compiled, kUnetPackage, times.compiled_unet);
  auto decoder_package = open_timed(man.vae.compiled, kDecoderPackage, times.compiled_vae_decoder);
  for (auto* pending : {&text_encoder, &unet, &vae_decoder}) pending->wait();
  for (auto* pending : {&unet_package, &decoder_package}) {
    if (pending->valid()) pending->wait();
  }
  bundle.tokenizer_.emplace(tokenizer.get());
  bundle.modules_->text_encoder = text_encoder.get();
  bundle.modules_->unet = unet.get();
  bundle.modules_->vae_decoder = vae_decoder.get();
  if (man.unet.latent_multiple == 0)
    bundle.manifest_.unet.latent_multiple = traced_latent_multiple(bundle.modules_->unet);
  check_module(bundle.modules_->text_encoder, root / man.text_encoder.file, man, device, bundle.dtype_);
  check_module(bundle.modules_->unet, root / man.unet.file, man, device, bundle.dtype_);
  check_module(bundle.modules_->vae_decoder, root / man.vae.decoder, man, device, bundle.dtype_);
  auto fit_timed = [&](std::future<OpenedPackage>& opened, const Manifest::Compiled& record,
                       const torch::jit::Module& module, const PackageRole& role, std::string& problem,
                       double& seconds) -> std::unique_ptr<PackageLoader> {
    if (!opened.valid()) return nullptr;
    const auto t = std::chrono::steady_clock::now();
    auto package = fit_compiled(opened.get(), root / record.file, record, module, device, role, problem);
    seconds += seconds_since(t);
    return package;
  };
  bundle.modules_->compiled_unet = fit_timed(unet_package, man.unet.compiled, bundle.modules_->unet, kUnetPackage,
                                             bundle.compiled_problem_, times.compiled_unet);
  bundle.modules_->compiled_vae_decoder =
      fit_timed(decoder_package, man.vae.compiled, bundle.modules_->vae_decoder, kDecoderPackage,
                bundle.compiled_decoder_problem_, times.compiled_vae_decoder);
  if (context.valid()) context.wait();  // the warm-up's calls are over before the first job's
  times.total = seconds_since(start);
  return bundle;
}

torch::Tensor Bundle::encode_text(const torch::Tensor& ids) const {
  c10::InferenceMode guard;
  const torch::Tensor host = ids.to(torch::kCPU, torch::kInt64).contiguous();
  std::vector<int64_t> key(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
  const std::vector<int64_t> shape = host.sizes().vec();
  auto& cache = modules_->encoded_texts;
  {
    std::lock_guard<std::mutex> lock(modules_->encoded_texts_mutex);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->shape == shape && it->ids == key) {
        Modules::EncodedText hit = std::move(*it);
        cache.erase(it);
        cache.push_back(std::move(hit));
        ++modules_->encoded_text_hits;
        return cache.back().embeddings;
      }
    }
  }
  torch::Tensor out = modules_->text_encoder.forward({ids.to(device_)}).toTensor();
  if (out.dim() != 3 || out.size(2) != manifest_.text_encoder.hidden_size) {
    throw ModelError(dir_ + ": the text encoder returned shape " + c10::str(out.sizes()) + ", expected [B, " +
                     std::to_string(manifest_.tokenizer.max_length) + ", " +
                     std::to_string(manifest_.text_encoder.hidden_size) + "] (model.json does not match the modules)");
  }
  out = out.to(torch::kFloat32);
  std::lock_guard<std::mutex> lock(modules_->encoded_texts_mutex);
  if (cache.size() == Modules::kEncodedTexts) cache.erase(cache.begin());
  cache.push_back({std::move(key), shape, out});
  return out;
}

int64_t Bundle::text_encoder_cache_hits() const {
  std::lock_guard<std::mutex> lock(modules_->encoded_texts_mutex);
  return modules_->encoded_text_hits;
}

bool Bundle::has_compiled_unet() const { return modules_->compiled_unet != nullptr; }
bool Bundle::has_compiled_vae_decoder() const { return modules_->compiled_vae_decoder != nullptr; }

void Bundle::check_engine(int64_t latent_h, int64_t latent_w) const {
  if (engine_ != UnetEngine::kCompiled) return;
  const auto& c = manifest_.unet.compiled;
  if (c.file.empty()) {
    throw ModelError("--unet-engine aoti: bundle " + dir_ +
                     " has no compiled UNet; re-export it with --aoti "
                     "(or add one with export_bundle.py --add-aoti)");
  }
  if (!has_compiled_unet()) throw ModelError("--unet-engine aoti: " + compiled_problem_);
  if (!c.accepts_size(latent_h, latent_w)) {
    const int f = manifest_.vae.scale_factor;
    throw ModelError("--unet-engine aoti: the compiled UNet takes " + c.takes(f) + ", not " +
                     std::to_string(latent_h * f) + "x" + std::to_string(latent_w * f) + " px");
  }
}

bool Bundle::uses_compiled(int64_t batch, int64_t latent_h, int64_t latent_w) const {
  return engine_ != UnetEngine::kTorchScript && has_compiled_unet() &&
         manifest_.unet.compiled.accepts(batch, latent_h, latent_w);
}

torch::Tensor Bundle::predict_noise(const torch::Tensor& sample, double timestep, const torch::Tensor& context,
                                    ModuleCalls* calls) const {
  c10::InferenceMode guard;
  const int64_t batch = sample.size(0);
  torch::Tensor t = torch::full({batch}, timestep, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  torch::Tensor x = sample.to(device_, dtype_);
  torch::Tensor ctx = context.to(device_, dtype_);
  torch::Tensor out;
  if (uses_compiled(batch, sample.size(2), sample.size(3))) {
    // The package takes dense inputs of exactly the exported dtypes and devices.
    out = modules_->compiled_unet->run({x.contiguous(), t, ctx.contiguous()}).at(0);
    if (calls != nullptr) ++calls->compiled;
  } else {
    out = modules_->unet.forward({x, t, ctx}).toTensor();
    if (calls != nullptr) ++calls->torchscript;
  }
  return out.to(torch::kFloat32);
}

torch::Tensor Bundle::encode_image(const torch::Tensor& images) const {
  c10::InferenceMode guard;
  if (!modules_->vae_encoder) {
    if (manifest_.vae.encoder.empty()) {
      throw ModelError(dir_ +
                       ": this bundle has no VAE encoder (model.json vae.encoder), which image-morph needs; "
                       "re-export it with scripts/export_bundle.py");
    }
    const fs::path file = fs::path(dir_) / manifest_.vae.encoder;
    double weights_seconds = 0;  // not part of the bundle's load
    modules_->vae_encoder =
        load_module(file, device_, manifest_.weights_beside(), weights_placement(device_), weights_seconds);
    check_module(*modules_->vae_encoder, file, manifest_, device_, dtype_);
  }
  torch::Tensor mean = modules_->vae_encoder->forward({images.to(device_, dtype_)}).toTensor().to(torch::kFloat32);
  if (mean.dim() != 4 || mean.size(1) != manifest_.vae.latent_channels) {
    throw ModelError(dir_ + ": the VAE encoder returned shape " + c10::str(mean.sizes()) + ", expected [B, " +
                     std::to_string(manifest_.vae.latent_channels) + ", h, w] (model.json does not match the modules)");
  }
  return mean * manifest_.vae.scaling_factor;
}

bool Bundle::decodes_compiled(int64_t batch, int64_t latent_h, int64_t latent_w) const {
  return engine_ != UnetEngine::kTorchScript && has_compiled_vae_decoder() &&
         manifest_.vae.compiled.accepts(batch, latent_h, latent_w);
}

torch::Tensor Bundle::decode(const torch::Tensor& latents, ModuleCalls* calls) const {
  c10::InferenceMode guard;
  const torch::Tensor scaled = (latents / manifest_.vae.scaling_factor).to(device_, dtype_);
  torch::Tensor out;
  if (decodes_compiled(scaled.size(0), scaled.size(2), scaled.size(3))) {
    out = modules_->compiled_vae_decoder->run({scaled.contiguous()}).at(0);
    if (calls != nullptr) ++calls->compiled;
  } else {
    out = modules_->vae_decoder.forward({scaled}).toTensor();
    if (calls != nullptr) ++calls->torchscript;
  }
  return out.to(torch::kFloat32);
}

void Bundle::reset_memory_peaks() const {
  if (!device_.is_cuda()) return;
  try {
    c10::getDeviceAllocator(device_.type())->resetPeakStats(device_.index());
  } catch (const std::exception&) {
    // Only the record of the peaks is lost.
  }
}

bool Bundle::memory_peaks(MemoryPeaks& peaks) const {
  if (!device_.is_cuda()) return false;
  try {
    const auto stats = c10::getDeviceAllocator(device_.type())->getDeviceStats(device_.index());
    constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    peaks.allocated = stats.allocated_bytes[all].peak;
    peaks.reserved = stats.reserved_bytes[all].peak;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool Bundle::device_memory(int64_t& free_bytes, int64_t& total_bytes) const {
  if (!device_.is_cuda()) return false;
  size_t free_now = 0, total = 0;
  if (cudaSetDevice(device_.index()) != cudaSuccess || cudaMemGetInfo(&free_now, &total) != cudaSuccess) return false;
  free_bytes = static_cast<int64_t>(free_now);
  total_bytes = static_cast<int64_t>(total);
  return true;
}

}  // namespace sdinterp
