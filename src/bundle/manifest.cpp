#include "sdinterp/manifest.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

using nlohmann::json;

// Reads typed fields out of one JSON object, naming "file: field" in every error.
class FieldReader {
 public:
  FieldReader(const json& object, std::string source, std::string prefix)
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  const json& require(const char* name, json::value_t type, const char* type_name) const {
    auto it = object_.find(name);
    if (it == object_.end()) fail(name, "is missing");
    bool ok = it->type() == type;
    // An integer is a fine number; an unsigned JSON integer is a fine integer.
    if (type == json::value_t::number_float) ok = it->is_number();
    if (type == json::value_t::number_integer) ok = it->is_number_integer();
    if (!ok) fail(name, std::string("must be ") + type_name);
    return *it;
  }
  bool has(const char* name) const { return object_.contains(name); }

  std::string string(const char* name) const {
    return require(name, json::value_t::string, "a string").get<std::string>();
  }
  std::string string_or(const char* name, const std::string& fallback) const {
    return has(name) ? string(name) : fallback;
  }
  // A string or null (null and absent read as "").
  std::string string_or_null(const char* name) const {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return "";
    if (!it->is_string()) fail(name, "must be a string or null");
    return it->get<std::string>();
  }
  int64_t integer(const char* name, int64_t min_value, int64_t max_value) const {
    const json& v = require(name, json::value_t::number_integer, "an integer");
    int64_t value = 0;
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(max_value)) fail(name, "is out of range");
      value = static_cast<int64_t>(u);
    } else {
      value = v.get<int64_t>();
    }
    if (value < min_value || value > max_value) {
      fail(name, "must be between " + std::to_string(min_value) + " and " + std::to_string(max_value));
    }
    return value;
  }
  int64_t integer_or(const char* name, int64_t min_value, int64_t max_value, int64_t fallback) const {
    return has(name) ? integer(name, min_value, max_value) : fallback;
  }
  double number(const char* name, double min_value, double max_value) const {
    double value = require(name, json::value_t::number_float, "a number").get<double>();
    if (!(value >= min_value && value <= max_value)) {
      fail(name, "must be between " + std::to_string(min_value) + " and " + std::to_string(max_value));
    }
    return value;
  }
  FieldReader object(const char* name) const {
    return FieldReader(require(name, json::value_t::object, "an object"), source_, prefix_ + name + ".");
  }
  std::string one_of(const char* name, std::initializer_list<const char*> allowed) const {
    std::string value = string(name);
    std::string list;
    for (const char* a : allowed) {
      if (value == a) return value;
      list += list.empty() ? a : std::string(", ") + a;
    }
    fail(name, "is \"" + value + "\"; expected one of " + list);
  }
  [[noreturn]] void fail(const char* name, const std::string& what) const {
    throw ModelError(source_ + ": field '" + prefix_ + name + "' " + what);
  }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

// A compiled package's record (unet.compiled, vae.compiled).
Manifest::Compiled read_compiled(const FieldReader& c) {
  Manifest::Compiled out;
  c.one_of("kind", {"aoti"});
  out.file = c.string("file");
  if (out.file.empty()) c.fail("file", "is empty");
  out.batch_min = static_cast<int>(c.integer("batch_min", 1, 1 << 16));
  out.batch_max = static_cast<int>(c.integer("batch_max", out.batch_min, 1 << 16));
  out.latent_multiple = static_cast<int>(c.integer("latent_multiple", 1, 1 << 12));
  out.latent_max = static_cast<int>(c.integer("latent_max", out.latent_multiple, 1 << 16));
  out.threads = static_cast<int>(c.integer_or("threads", 0, 1 << 16, 0));
  out.weights_fnv1a64 = c.string_or("weights_fnv1a64", "");
  out.tuning = c.string_or("tuning", "default");
  return out;
}

}  // namespace

Manifest parse_manifest(std::string_view text, const std::string& source) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) throw ModelError(source + ": not valid JSON (the bundle is corrupt; re-export it)");
  if (!root.is_object()) throw ModelError(source + ": expected a JSON object at the top level");

  FieldReader top(root, source, "");
  Manifest m;
  m.format_version = static_cast<int>(top.integer("format_version", 1, 1000));
  if (m.format_version > kManifestFormatVersion) {
    throw ModelError(source + ": format_version " + std::to_string(m.format_version) +
                     " is newer than this sdinterp reads (" + std::to_string(kManifestFormatVersion) +
                     "); update sdinterp");
  }
  m.description = top.string_or("description", "");
  m.device = top.one_of("device", {"cpu", "cuda"});
  m.dtype = top.one_of("dtype", {"float32", "float16", "bfloat16"});
  // Version 2 names the attention and the source; version 1 bundles (tiny-sd) have neither.
  const bool v2 = m.format_version >= 2;
  if (v2 || top.has("attention")) m.attention = top.one_of("attention", {"sdpa", "classic"});
  if (v2 || top.has("source")) {
    FieldReader src = top.object("source");
    m.source.model = src.string("model");
    if (m.source.model.empty()) src.fail("model", "is empty");
    m.source.kind = src.one_of("kind", {"hub", "folder", "single-file"});
    m.source.revision = src.string_or_null("revision");
    m.source.weights_sha256 = src.string("weights_sha256");
    const std::string& h = m.source.weights_sha256;
    if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos) {
      src.fail("weights_sha256", "must be 64 lower-case hex digits");
    }
  }

  FieldReader tok = top.object("tokenizer");
  m.tokenizer.kind = tok.one_of("kind", {"clip-bpe"});
  m.tokenizer.vocab = tok.string("vocab");
  m.tokenizer.merges = tok.string("merges");
  m.tokenizer.max_length = static_cast<int>(tok.integer("max_length", 3, 4096));
  m.tokenizer.bos_id = tok.integer("bos_id", 0, INT32_MAX);
  m.tokenizer.eos_id = tok.integer("eos_id", 0, INT32_MAX);
  m.tokenizer.pad_id = tok.integer("pad_id", 0, INT32_MAX);

  FieldReader te = top.object("text_encoder");
  m.text_encoder.file = te.string("file");
  m.text_encoder.hidden_size = static_cast<int>(te.integer("hidden_size", 1, 1 << 16));

  FieldReader unet = top.object("unet");
  m.unet.file = unet.string("file");
  m.unet.in_channels = static_cast<int>(unet.integer("in_channels", 1, 64));
  m.unet.sample_size = static_cast<int>(unet.integer("sample_size", 1, 1 << 12));
  m.unet.cross_attention_dim = static_cast<int>(unet.integer("cross_attention_dim", 1, 1 << 16));
  // Every version 2 bundle's UNet was traced to take every size, recorded or not.
  m.unet.latent_multiple = static_cast<int>(unet.integer_or("latent_multiple", 1, 1 << 12, v2 ? 1 : 0));
  if (unet.has("compiled")) m.unet.compiled = read_compiled(unet.object("compiled"));

  FieldReader vae = top.object("vae");
  m.vae.decoder = vae.string("decoder");
  m.vae.encoder = vae.string_or("encoder", "");
  m.vae.latent_channels = static_cast<int>(vae.integer("latent_channels", 1, 64));
  m.vae.scale_factor = static_cast<int>(vae.integer("scale_factor", 1, 64));
  m.vae.scaling_factor = vae.number("scaling_factor", 1e-6, 1e6);
  if (vae.has("compiled")) m.vae.compiled = read_compiled(vae.object("compiled"));

  FieldReader ns = top.object("noise_schedule");
  m.noise_schedule.num_train_timesteps = static_cast<int>(ns.integer("num_train_timesteps", 2, 100000));
  m.noise_schedule.beta_start = ns.number("beta_start", 0.0, 1.0);
  m.noise_schedule.beta_end = ns.number("beta_end", 0.0, 1.0);
  m.noise_schedule.beta_schedule = ns.one_of("beta_schedule", {"scaled_linear", "linear"});
  m.noise_schedule.prediction_type = ns.one_of("prediction_type", {"epsilon", "v_prediction"}) == "epsilon"
                                         ? PredictionType::kEpsilon
                                         : PredictionType::kVPrediction;

  if (m.text_encoder.hidden_size != m.unet.cross_attention_dim) {
    throw ModelError(source + ": text_encoder.hidden_size (" + std::to_string(m.text_encoder.hidden_size) +
                     ") does not match unet.cross_attention_dim (" + std::to_string(m.unet.cross_attention_dim) +
                     "): the text encoder and UNet come from different models");
  }
  if (m.unet.in_channels != m.vae.latent_channels) {
    throw ModelError(source + ": unet.in_channels (" + std::to_string(m.unet.in_channels) +
                     ") does not match vae.latent_channels (" + std::to_string(m.vae.latent_channels) + ")");
  }
  m.raw = std::move(root);
  return m;
}

std::string Manifest::Compiled::takes(int scale_factor) const {
  const std::string batches = batch_min == batch_max
                                  ? "batch " + std::to_string(batch_max) + " only"
                                  : "batch " + std::to_string(batch_min) + ".." + std::to_string(batch_max);
  const std::string side = std::to_string(latent_max * scale_factor);
  if (latent_multiple == latent_max) return batches + ", images of " + side + "x" + side + " px only";
  return batches + ", images in steps of " + std::to_string(latent_multiple * scale_factor) + " px up to " + side +
         " px";
}

std::string Manifest::export_command(const std::string& to_device, const std::string& to_dtype) const {
  std::string model = source.model.empty() ? "MODEL" : source.model;
  // Quote for a POSIX shell when the name has anything beyond the usual path characters.
  if (model.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:@+=,") !=
      std::string::npos) {
    std::string quoted = "'";
    for (char c : model) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    model = quoted + "'";
  }
  std::string command = "scripts/export_bundle.py " + model + " OUT_DIR --device " + to_device + " --dtype " + to_dtype;
  if (format_version >= 2 && attention == "classic") command += " --compat";
  return command;
}

std::vector<std::string> Manifest::module_files() const {
  std::vector<std::string> out = {text_encoder.file, unet.file, vae.decoder};
  if (!vae.encoder.empty()) out.push_back(vae.encoder);
  return out;
}

std::vector<std::string> Manifest::files() const {
  std::vector<std::string> out = {"model.json", tokenizer.vocab, tokenizer.merges};
  for (const auto& f : module_files()) {
    out.push_back(f);
    if (weights_beside()) out.push_back(weights_file(f));
  }
  return out;
}

std::vector<Manifest::CompiledModule> Manifest::compiled_modules() const {
  std::vector<CompiledModule> out;
  for (const CompiledModule& c :
       {CompiledModule{"unet", &unet.compiled}, CompiledModule{"vae_decoder", &vae.compiled}}) {
    if (!c.record->file.empty()) out.push_back(c);
  }
  return out;
}

std::string weights_file(const std::string& module_file) {
  return std::filesystem::path(module_file).replace_extension(".safetensors").string();
}

Manifest load_manifest(const std::string& bundle_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(bundle_dir, ec)) {
    if (!fs::exists(bundle_dir, ec)) {
      throw ModelError("bundle folder not found: " + bundle_dir + " (pass --bundle DIR, a folder with model.json)");
    }
    const fs::path folder = fs::path(bundle_dir).parent_path();
    throw ModelError(
        bundle_dir + " is a file; a bundle is a folder" +
        (fs::path(bundle_dir).filename() == "model.json"
             ? ": give the one that holds it (" + (folder.empty() ? std::string(".") : folder.string()) + ")"
             : " with model.json"));
  }
  fs::path path = fs::path(bundle_dir) / "model.json";
  if (!fs::exists(path, ec)) {
    throw ModelError(bundle_dir + " is not a bundle: it has no model.json (scripts/export_bundle.py makes one)");
  }
  if (fs::is_directory(path, ec))
    throw ModelError(path.string() + ": cannot read the bundle manifest: a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path.string() + ": cannot read the bundle manifest: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_manifest(text.str(), path.string());
}

}  // namespace sdinterp
