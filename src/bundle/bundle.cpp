#include "sdinterp/bundle.h"

#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <filesystem>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace fs = std::filesystem;

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float16") return torch::kFloat16;
  if (name == "bfloat16") return torch::kBFloat16;
  throw ModelError("unknown dtype \"" + name + "\" (expected float32, float16 or bfloat16)");
}

namespace {

std::string reexport_hint(const Manifest& m, const std::string& device, const std::string& dtype) {
  return "re-export the model for it: " + m.export_command(device, dtype);
}

torch::Device resolve_device(const std::string& asked, const Manifest& m, const std::string& dir) {
  std::string wanted = asked == "auto" ? m.device : asked;
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(wanted);
  } catch (const c10::Error&) {
    throw ConfigError("unknown --device \"" + asked + "\"; use auto, cpu, cuda or cuda:N");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    throw ConfigError("unsupported --device \"" + asked + "\"; use auto, cpu, cuda or cuda:N");
  }
  const std::string kind = device.is_cuda() ? "cuda" : "cpu";
  if (kind != m.device) {
    throw ModelError("bundle " + dir + " was traced for " + m.device + "/" + m.dtype + " and cannot run on " + kind +
                     " (tracing bakes the device in); " + reexport_hint(m, kind, kind == "cpu" ? "float32" : m.dtype));
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw ModelError("bundle " + dir + " was traced for cuda/" + m.dtype + " but CUDA is not available here (no GPU or driver); " +
                       reexport_hint(m, "cpu", "float32") + ", or run it on a machine with a GPU");
    }
    int count = static_cast<int>(torch::cuda::device_count());
    int index = device.has_index() ? device.index() : 0;
    if (index >= count) {
      throw ConfigError("--device " + wanted + ": only " + std::to_string(count) + " CUDA device(s) present");
    }
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return device;
}

torch::jit::Module load_module(const fs::path& path, const torch::Device& device) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ModelError(path.string() + ": missing bundle file (the bundle is incomplete; re-export it)");
  }
  try {
    // A CUDA bundle on cuda:0 is loaded without map_location: its weights come back on the GPU
    // and the graph's shape constants stay on the CPU (see the GPU notes: a map_location moves
    // them too, each shape computation then synchronises and CUDA graph capture fails).
    torch::jit::Module module = (device.is_cpu() || device.index() == 0) ? torch::jit::load(path.string())
                                                                          : torch::jit::load(path.string(), device);
    module.eval();
    return module;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    auto newline = what.find('\n');
    if (newline != std::string::npos) what.resize(newline);
    throw ModelError(path.string() + ": cannot load TorchScript module (corrupt or not a TorchScript file): " + what);
  }
}

// Checks that a loaded module's weights are on the expected device and of the expected dtype.
void check_module(const torch::jit::Module& module, const fs::path& path, const Manifest& m,
                  const torch::Device& device, torch::ScalarType dtype) {
  for (const auto& p : module.parameters()) {
    if (p.device().type() != device.type() || (p.is_floating_point() && p.scalar_type() != dtype)) {
      throw ModelError(path.string() + ": weights are " + c10::toString(p.scalar_type()) + " on " +
                       p.device().str() + " but model.json says " + m.dtype + " on " + m.device +
                       " (the bundle is inconsistent; re-export it)");
    }
    break;
  }
}

}  // namespace

struct Bundle::Modules {
  torch::jit::Module text_encoder;
  torch::jit::Module unet;
  torch::jit::Module vae_decoder;
};

Bundle::Bundle(std::string dir, Manifest manifest, ClipTokenizer tokenizer, torch::Device device)
    : dir_(std::move(dir)),
      manifest_(std::move(manifest)),
      tokenizer_(std::move(tokenizer)),
      device_(device),
      modules_(std::make_unique<Modules>()) {}
Bundle::Bundle(Bundle&&) noexcept = default;
Bundle& Bundle::operator=(Bundle&&) noexcept = default;
Bundle::~Bundle() = default;

Bundle Bundle::load(const std::string& dir, const std::string& device_name) {
  Manifest m = load_manifest(dir);
  if (m.attention == "sdpa" && TORCH_VERSION_MAJOR < 2) {
    throw ModelError("bundle " + dir + " uses scaled_dot_product_attention, which this LibTorch " + TORCH_VERSION +
                     " lacks; " + reexport_hint(m, m.device, m.dtype) + " --compat");
  }
  torch::Device device = resolve_device(device_name, m, dir);
  const fs::path root(dir);
  ClipTokenizer tokenizer = load_bundle_tokenizer(dir, m);
  Bundle bundle(dir, std::move(m), std::move(tokenizer), device);
  const Manifest& man = bundle.manifest_;
  bundle.dtype_ = parse_dtype(man.dtype);
  c10::InferenceMode guard;
  bundle.modules_->text_encoder = load_module(root / man.text_encoder.file, device);
  bundle.modules_->unet = load_module(root / man.unet.file, device);
  bundle.modules_->vae_decoder = load_module(root / man.vae.decoder, device);
  check_module(bundle.modules_->text_encoder, root / man.text_encoder.file, man, device, bundle.dtype_);
  check_module(bundle.modules_->unet, root / man.unet.file, man, device, bundle.dtype_);
  check_module(bundle.modules_->vae_decoder, root / man.vae.decoder, man, device, bundle.dtype_);
  return bundle;
}

torch::Tensor Bundle::encode_text(const torch::Tensor& ids) {
  c10::InferenceMode guard;
  torch::Tensor out = modules_->text_encoder.forward({ids.to(device_)}).toTensor();
  if (out.dim() != 3 || out.size(2) != manifest_.text_encoder.hidden_size) {
    throw ModelError(dir_ + ": the text encoder returned shape " + c10::str(out.sizes()) + ", expected [B, " +
                     std::to_string(manifest_.tokenizer.max_length) + ", " +
                     std::to_string(manifest_.text_encoder.hidden_size) + "] (model.json does not match the modules)");
  }
  return out.to(torch::kFloat32);
}

torch::Tensor Bundle::predict_noise(const torch::Tensor& sample, double timestep, const torch::Tensor& context) {
  c10::InferenceMode guard;
  const int64_t batch = sample.size(0);
  torch::Tensor t = torch::full({batch}, timestep, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  torch::Tensor out = modules_->unet.forward({sample.to(device_, dtype_), t, context.to(device_, dtype_)}).toTensor();
  return out.to(torch::kFloat32);
}

torch::Tensor Bundle::decode(const torch::Tensor& latents) {
  c10::InferenceMode guard;
  torch::Tensor scaled = latents / manifest_.vae.scaling_factor;
  return modules_->vae_decoder.forward({scaled.to(device_, dtype_)}).toTensor().to(torch::kFloat32);
}

}  // namespace sdinterp
