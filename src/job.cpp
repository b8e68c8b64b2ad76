#include "sdinterp/job.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "sdinterp/closest_name.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/number_text.h"
#include "tokenizer/unicode.h"

namespace sdinterp {

bool text_from_json(const nlohmann::json& v, std::string& out) {
  if (v.is_string()) {
    out = v.get<std::string>();
    return true;
  }
  if (!v.is_object() || v.size() != 1 || !v.contains("bytes") || !v["bytes"].is_string()) return false;
  const std::string& hex = v["bytes"].get_ref<const std::string&>();
  if (hex.size() % 2 != 0) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
    if (ec != std::errc() || ptr != hex.data() + i + 2) return false;
    out.push_back(static_cast<char>(value));
  }
  return true;
}

namespace {

using nlohmann::json;

// `source` names the job file and line; "" for the command line, where the flag names itself.
std::string prefix(const std::string& source) { return source.empty() ? "" : source + ": "; }

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& what) {
  throw ConfigError(prefix(source) + "\"" + key + "\" " + what);
}

std::string get_string(const json& v, const std::string& source, const std::string& key) {
  std::string out;
  if (!text_from_json(v, out)) fail(source, key, "must be a string (or {\"bytes\": HEX})");
  return out;
}

std::vector<std::string> get_strings(const json& v, const std::string& source, const std::string& key) {
  std::string one;
  if (text_from_json(v, one)) return {one};
  if (!v.is_array()) fail(source, key, "must be a string or an array of strings");
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!text_from_json(item, one)) fail(source, key, "must be a string or an array of strings");
    out.push_back(one);
  }
  return out;
}

// A number of a job file outside what its option takes, or of the wrong kind: the words of
// range_problem, whichever reader met it.
[[noreturn]] void fail_range(const std::string& source, const std::string& key, const std::string& value) {
  throw ConfigError(prefix(source) + "--" + key + " takes " + range_text(numeric_option(key)) + ", not " + value);
}

int get_int(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_number()) fail_range(source, key, v.dump());
  if (!v.is_number_integer()) {
    const double d = v.get<double>();
    if (d != std::floor(d) || std::fabs(d) > INT32_MAX) fail_range(source, key, number_text(d));
    return static_cast<int>(d);  // 3.0: a whole number written with a point
  }
  if (v.is_number_unsigned() ? v.get<uint64_t>() > INT32_MAX
                             : (v.get<int64_t>() > INT32_MAX || v.get<int64_t>() < INT32_MIN)) {
    fail_range(source, key, v.dump());
  }
  return v.get<int>();
}

double get_number(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_number()) fail_range(source, key, v.dump());
  return v.get<double>();
}

[[noreturn]] void fail_seed(const std::string& source, const std::string& value) {
  throw ConfigError(prefix(source) + "--seed takes a whole number from 0 to " + kMaxSeedText + ", not " + value);
}

// A JSON number that is a whole number from 0 up: an integer, or one written with a point (7.0,
// 1e3, as a script's float gives it) where the double holds it exactly (up to 2^53).
std::optional<uint64_t> whole_number(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return v.get<int64_t>() >= 0 ? std::optional<uint64_t>(v.get<int64_t>()) : std::nullopt;
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740992.0) return std::nullopt;
  return static_cast<uint64_t>(d);
}

// A refused seed as the message shows it: a whole number too large for a double to hold exactly
// says how to write it.
std::string seed_text(const json& v) {
  const bool inexact = v.is_number_float() && v.get<double>() > 0 && v.get<double>() == std::floor(v.get<double>());
  return v.dump() +
         (inexact ? " (a seed above 2^53 must be written as digits alone, without a point or exponent)" : "");
}

// A name (mode, interp, pace, ease) read by `parse`, its error prefixed with the job's source.
template <typename Parse>
auto get_named(const json& v, const std::string& source, const std::string& key, Parse parse) {
  if (!v.is_string()) {
    // The table's own list of names, from its message for a name it does not have.
    std::string names;
    try {
      parse(std::string());
    } catch (const ConfigError& e) {
      const std::string what = e.what(), marker = "; choose one of: ";
      if (const auto at = what.find(marker); at != std::string::npos)
        names = " (" + what.substr(at + marker.size()) + ")";
    }
    fail(source, key, "takes a name as a string" + names + ", not " + v.dump());
  }
  const std::string name = v.get<std::string>();
  try {
    return parse(name);
  } catch (const ConfigError& e) {
    throw ConfigError(prefix(source) + e.what());
  }
}

bool get_bool(const json& v, const std::string& source, const std::string& key) {
  if (!v.is_boolean()) fail(source, key, "must be true or false");
  return v.get<bool>();
}

// The keys of one keyframe object.
const std::vector<std::string>& keyframe_keys() {
  static const std::vector<std::string> keys = {"frame", "prompt", "negative", "seed", "ease"};
  return keys;
}

std::string key_suggestion(const std::string& key, const std::vector<std::string>& known_keys);

Keyframe get_keyframe(const json& v, const std::string& source, size_t index) {
  const std::string which = "keyframe " + std::to_string(index + 1);
  if (!v.is_object())
    throw ConfigError(prefix(source) + which + " must be an object, e.g. {\"frame\": 0, \"prompt\": \"a red fox\"}");
  Keyframe k;
  bool has_frame = false, has_prompt = false;
  for (const auto& [key, value] : v.items()) {
    if (!key.empty() && key[0] == '_') continue;
    const std::string name = which + " \"" + key + "\"";
    if (key == "frame") {
      const std::optional<uint64_t> frame = whole_number(value);
      if (!frame || *frame > 100000) {
        throw ConfigError(prefix(source) + name + " takes a whole number from 0 to 100000, not " + value.dump());
      }
      k.frame = static_cast<int>(*frame);
      has_frame = true;
    } else if (key == "prompt") {
      if (!text_from_json(value, k.prompt))
        throw ConfigError(prefix(source) + name + " must be a string (or {\"bytes\": HEX})");
      has_prompt = true;
    } else if (key == "negative") {
      std::string text;
      if (!text_from_json(value, text))
        throw ConfigError(prefix(source) + name + " must be a string (or {\"bytes\": HEX})");
      k.negative = text;
    } else if (key == "seed") {
      k.seed = whole_number(value);
      if (!k.seed) {
        throw ConfigError(prefix(source) + name + " takes a whole number from 0 to " + kMaxSeedText + ", not " +
                          seed_text(value));
      }
    } else if (key == "ease") {
      if (!value.is_string()) throw ConfigError(prefix(source) + name + " must be a string");
      try {
        k.ease = parse_ease(value.get<std::string>(), "ease");
      } catch (const ConfigError& e) {
        throw ConfigError(prefix(source) + which + ": " + e.what());
      }
    } else {
      throw ConfigError(prefix(source) + which + ": unknown key \"" + key + "\"" +
                        key_suggestion(key, keyframe_keys()));
    }
  }
  if (!has_frame) throw ConfigError(prefix(source) + which + " has no \"frame\" (its index in the walk)");
  if (!has_prompt) throw ConfigError(prefix(source) + which + " has no \"prompt\"");
  return k;
}

// " (did you mean \"guidance\"?)" for a key a few edits from one of `known_keys` (the job keys by
// default); the general advice otherwise.
std::string key_suggestion(const std::string& key, const std::vector<std::string>& known_keys) {
  std::string lower = key;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::replace(lower.begin(), lower.end(), '_', '-');
  if (const std::optional<std::string> name = closest_name(lower, known_keys))
    return " (did you mean \"" + *name + "\"?)";
  if (&known_keys != &job_keys()) {
    std::string list;
    for (const std::string& k : known_keys) list += (list.empty() ? "" : ", ") + k;
    return " (its keys: " + list + ")";
  }
  return " (job keys are the generate flags' names, e.g. \"step-size\"; keys starting with _ are comments)";
}

}  // namespace

namespace {

// A field of one of RunConfig's parts, as a member of RunConfig. Template parameters deduced from
// other arguments do not deduce from it (a part's member pointer converts to RunConfig's).
template <typename T>
struct FieldOf {
  using type = T RunConfig::*;
};
template <typename T>
using Field = typename FieldOf<T>::type;

JobKey row(const std::string& key, FlagKind kind, const std::string& help, const std::string& flag = "") {
  JobKey k;
  k.key = key;
  k.flag = flag;
  k.kind = kind;
  k.help = help;
  return k;
}

JobKey text_key(const std::string& key, const std::string& help, Field<std::string> field,
                const std::string& flag = "") {
  JobKey k = row(key, FlagKind::kText, help, flag);
  k.read = [key, field](const json& v, RunConfig& c, const std::string& source) {
    c.*field = get_string(v, source, key);
  };
  k.write = [field](const RunConfig& c) { return text_json(c.*field); };
  return k;
}

JobKey path_key(const std::string& key, const std::string& help, Field<std::string> field,
                const std::string& flag = "") {
  JobKey k = text_key(key, help, field, flag);
  k.paths = [field](RunConfig& c) { return std::vector<std::string*>{&(c.*field)}; };
  return k;
}

JobKey texts_key(const std::string& key, const std::string& help, Field<std::vector<std::string>> field) {
  JobKey k = row(key, FlagKind::kTexts, help);
  k.read = [key, field](const json& v, RunConfig& c, const std::string& source) {
    c.*field = get_strings(v, source, key);
  };
  k.write = [field](const RunConfig& c) {
    json out = json::array();
    for (const auto& t : c.*field) out.push_back(text_json(t));
    return out;
  };
  return k;
}

// A key whose job value is the field itself (a number or a boolean), read by `get`.
template <typename T>
JobKey plain_key(const std::string& key, FlagKind kind, const std::string& help, Field<T> field,
                 T (*get)(const json&, const std::string&, const std::string&)) {
  JobKey k = row(key, kind, help);
  k.read = [key, field, get](const json& v, RunConfig& c, const std::string& source) {
    c.*field = get(v, source, key);
  };
  k.write = [field](const RunConfig& c) { return json(c.*field); };
  return k;
}

JobKey integer_key(const std::string& key, const std::string& help, Field<int> field) {
  return plain_key(key, FlagKind::kNumber, help, field, get_int);
}

JobKey number_key(const std::string& key, const std::string& help, Field<double> field) {
  return plain_key(key, FlagKind::kNumber, help, field, get_number);
}

JobKey switch_key(const std::string& key, const std::string& help, Field<bool> field) {
  return plain_key(key, FlagKind::kSwitch, help, field, get_bool);
}

// A key whose value is one of an enum's names (mode, interp, ...).
template <typename E, typename Name>
JobKey name_key(const std::string& key, const std::string& help, Field<E> field, E (*parse)(const std::string&),
                Name name) {
  JobKey k = row(key, FlagKind::kText, help);
  k.read = [key, field, parse](const json& v, RunConfig& c, const std::string& source) {
    c.*field = get_named(v, source, key, parse);
  };
  k.write = [field, name](const RunConfig& c) { return json(name(c.*field)); };
  return k;
}

Ease parse_default_ease(const std::string& name) { return parse_ease(name); }

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<JobKey> make_job_key_table() {
  std::vector<JobKey> t;
  t.push_back(path_key("bundle", "Model bundle folder (with model.json), e.g. models/tiny-sd", &RunConfig::bundle_dir));
  t.push_back(name_key("mode", "Walk: prompt-walk, slerp-latent, multi-prompt, circular, timeline or image-morph",
                       &RunConfig::mode, parse_walk_mode, walk_mode_name));
  t.push_back(texts_key("prompt", "Prompt text (repeat for multi-prompt)", &RunConfig::prompts));
  t.push_back(texts_key("negative", "Negative prompt: once for all prompts, or once per prompt (default \"\")",
                        &RunConfig::negatives));
  JobKey seed =
      row("seed", FlagKind::kNumber,
          std::string("Seed of the latents, 0 to ") + kMaxSeedText + " (default: drawn at random and printed)");
  seed.read = [](const json& v, RunConfig& c, const std::string& source) {
    if (v.is_null()) {
      c.seed.reset();
      return;
    }
    c.seed = whole_number(v);
    if (!c.seed) fail_seed(source, seed_text(v));
  };
  seed.write = [](const RunConfig& c) { return c.seed ? json(*c.seed) : json(nullptr); };
  t.push_back(seed);
  t.push_back(integer_key(
      "frames",
      "Frames (multi-prompt and image-morph: frames per pair; timeline: the period with --cycle, else unused)",
      &RunConfig::frames));
  t.push_back(integer_key("steps", "Denoising steps", &RunConfig::steps));
  t.push_back(number_key("guidance", "Classifier-free guidance scale", &RunConfig::guidance));
  t.push_back(integer_key("height", "Image height, a multiple of 8", &RunConfig::height));
  t.push_back(integer_key("width", "Image width, a multiple of 8", &RunConfig::width));
  t.push_back(number_key("step-size", "prompt-walk: added to the text embeddings per frame", &RunConfig::step_size));
  t.push_back(name_key("interp", "slerp-latent, multi-prompt, timeline and image-morph: slerp or lerp",
                       &RunConfig::interp, parse_interp, interp_name));
  t.push_back(name_key("scheduler", join_names(scheduler_names()), &RunConfig::scheduler, parse_scheduler_kind,
                       scheduler_name));
  JobKey keyframes = row("keyframes", FlagKind::kKeyframes,
                         "timeline: a keyframe, FRAME[,seed=N][,ease=NAME][,negative=TEXT]:PROMPT "
                         "(e.g. \"12,ease=sine:a white owl\") or a JSON object; repeat in order",
                         "--keyframe");
  keyframes.read = [](const json& v, RunConfig& c, const std::string& source) {
    if (!v.is_array()) throw ConfigError(prefix(source) + "\"keyframes\" must be an array of keyframe objects");
    c.keyframes.clear();
    for (size_t i = 0; i < v.size(); ++i) c.keyframes.push_back(get_keyframe(v[i], source, i));
  };
  keyframes.write = [](const RunConfig& c) {
    json out = json::array();
    for (const Keyframe& k : c.keyframes) {
      json one = {{"frame", k.frame}, {"prompt", text_json(k.prompt)}};
      if (k.negative) one["negative"] = text_json(*k.negative);
      if (k.seed) one["seed"] = *k.seed;
      if (k.ease) one["ease"] = ease_name(*k.ease);
      out.push_back(one);
    }
    return out;
  };
  t.push_back(keyframes);
  t.push_back(switch_key("cycle",
                         "timeline: close the walk back to the first keyframe at index --frames (the period), "
                         "a loop without a seam",
                         &RunConfig::cycle));
  t.push_back(name_key("ease", "timeline: the keyframes' default ease: linear, sine, cubic, in, out or hold",
                       &RunConfig::ease, parse_default_ease, ease_name));
  t.push_back(name_key("pace",
                       "uniform (evenly spaced weights, the notebook's) or even (frames equally far apart: "
                       "measured on a rendered pass, then re-placed; about twice the time)",
                       &RunConfig::pace, parse_pace, pace_name));
  t.push_back(integer_key("pace-passes", "Measuring passes of --pace even", &RunConfig::pace_passes));
  JobKey image =
      texts_key("image",
                "image-morph: an image to morph through, PNG or JPEG (alpha composited on white, turned upright by "
                "its EXIF orientation); "
                "repeat, two or more in order",
                &RunConfig::images);
  image.paths = [](RunConfig& c) {
    std::vector<std::string*> out;
    for (std::string& path : c.images) out.push_back(&path);
    return out;
  };
  t.push_back(image);
  t.push_back(name_key("fit",
                       "image-morph: crop (scale to cover, centre crop), pad (scale to fit, centred on white) or "
                       "stretch",
                       &RunConfig::fit, parse_fit, fit_name));
  t.push_back(number_key("strength", "image-morph: how far from each image the walk starts (img2img strength)",
                         &RunConfig::strength));
  t.push_back(name_key("inversion",
                       "image-morph: noise (the scheduler noises each image, as img2img) or ddim "
                       "(deterministic DDIM inversion; with --scheduler ddim)",
                       &RunConfig::inversion, parse_inversion, inversion_name));
  t.push_back(switch_key("adain",
                         "image-morph: renormalise each in-between latent to the interpolated channel means and "
                         "standard deviations of its two images (AdaIN)",
                         &RunConfig::adain));
  t.push_back(integer_key("batch", "Frames per UNet call", &RunConfig::batch));
  t.push_back(number_key("max-vram", "CUDA: device memory the automatic --batch and the VAE decode may plan for",
                         &RunConfig::max_vram_gb));
  t.push_back(name_key("device", "auto (the bundle's device), cpu, cuda or cuda:N", &RunConfig::device, parse_device,
                       device_name));
  t.push_back(name_key("unet-engine",
                       "auto (the bundle's AOTInductor UNet where it fits, else TorchScript), torchscript or aoti",
                       &RunConfig::unet_engine, parse_unet_engine, unet_engine_name));
  t.push_back(path_key("output", "Animation file: .gif, .webp or .mp4; metadata goes to FILE.json", &RunConfig::output,
                       "-o,--output"));
  t.push_back(path_key("png-dir", "Write frames as DIR/frame_0000.png, ... (lossless)", &RunConfig::png_dir));
  t.push_back(number_key("fps", "Frames per second of the animation (" + fps_limits_text() + ")", &RunConfig::fps));
  t.push_back(integer_key("loop", "Times the animation plays (WebP: up to 65535)", &RunConfig::loop));
  t.push_back(switch_key("boomerang", "Play forward then back (end frames not repeated)", &RunConfig::boomerang));
  t.push_back(switch_key("seamless-loop",
                         "Leave out the last frame, which repeats the first (circular, 3 frames or more; multi-prompt "
                         "or image-morph ending on its first prompt or image), so a loop shows no frame twice",
                         &RunConfig::seamless_loop));
  t.push_back(name_key("dither", "GIF: diffusion, ordered or none", &RunConfig::dither, parse_dither, dither_name));
  t.push_back(switch_key("lossless", "WebP: lossless frames", &RunConfig::lossless));
  t.push_back(number_key("quality", "WebP: lossy quality", &RunConfig::quality));
  t.push_back(integer_key("crf", "MP4: H.264 constant rate factor", &RunConfig::crf));
  JobKey overwrite = switch_key("overwrite", "Replace existing outputs", &RunConfig::overwrite);
  overwrite.write = nullptr;  // not recorded: repeating a run from its metadata must not clobber
  t.push_back(overwrite);
  return t;
}

}  // namespace

const std::vector<JobKey>& job_key_table() {
  static const std::vector<JobKey> table = make_job_key_table();
  return table;
}

const std::vector<std::string>& job_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const JobKey& k : job_key_table()) out.push_back(k.key);
    return out;
  }();
  return keys;
}

void apply_job(const json& job, RunConfig& c, const std::string& source) {
  if (!job.is_object()) throw ConfigError(prefix(source) + "a job must be a JSON object");
  for (const auto& item : job.items()) {
    const std::string& key = item.key();  // not a structured binding: the lambda below captures it
    const json& v = item.value();
    if (key == "sdinterp") continue;              // metadata written by sdinterp: information only
    if (!key.empty() && key[0] == '_') continue;  // a comment: "_note": "..."
    const auto& table = job_key_table();
    const auto row = std::find_if(table.begin(), table.end(), [&](const JobKey& k) { return k.key == key; });
    if (row == table.end())
      throw ConfigError(prefix(source) + "unknown key \"" + key + "\"" + key_suggestion(key, job_keys()));
    row->read(v, c, source);
  }
}

json keyframe_flag_value(const std::string& text) {
  const std::string shown = "--keyframe \"" + text + "\"";
  if (!text.empty() && text[0] == '{') return parse_job_object(text, shown);
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    throw ConfigError(shown +
                      ": write FRAME[,seed=N][,ease=NAME][,negative=TEXT]:PROMPT (e.g. \"12,ease=sine:a white owl\") "
                      "or a JSON object");
  }
  json k = json::object();
  k["prompt"] = text_json(text.substr(colon + 1));
  std::string head = text.substr(0, colon);
  size_t start = 0;
  for (int field = 0; start <= head.size(); ++field) {
    const size_t comma = head.find(',', start);
    const std::string part = head.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? head.size() + 1 : comma + 1;
    if (field == 0) {
      int64_t frame = -1;
      auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), frame);
      if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || frame < 0 || frame > 100000) {
        throw ConfigError(shown + ": the frame takes a whole number from 0 to 100000, not \"" + part + "\"");
      }
      k["frame"] = frame;
      continue;
    }
    const size_t eq = part.find('=');
    const std::string name = part.substr(0, eq), value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (eq == std::string::npos || (name != "seed" && name != "ease" && name != "negative")) {
      // After negative=, a comma most likely belongs to the negative's text, which this form cannot hold.
      const std::string hint =
          k.contains("negative") ? " (a negative with a comma or colon: give the keyframe as a JSON object)" : "";
      throw ConfigError(shown + ": unknown \"" + part + "\"; after the frame come seed=N, ease=NAME, negative=TEXT" +
                        hint);
    }
    if (k.contains(name)) throw ConfigError(shown + ": " + name + " is given twice; give it once");
    if (name == "seed") {
      uint64_t seed = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seed);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
        throw ConfigError(shown + ": seed takes a whole number from 0 to " + kMaxSeedText + ", not \"" + value + "\"");
      }
      k["seed"] = seed;
    } else if (name == "ease") {
      k["ease"] = value;
    } else {
      k["negative"] = text_json(value);
    }
  }
  return k;
}

json flag_value(const std::string& key, const std::string& text) {
  const std::string source;  // the flag names itself
  const char* begin = text.data();
  const char* end = begin + text.size();
  // The text as the message shows it: a number as it is, anything else quoted.
  char* number_end = nullptr;
  (void)std::strtod(begin, &number_end);
  const std::string shown = !text.empty() && number_end == end ? text : "\"" + text + "\"";
  if (key == "seed") {
    uint64_t seed = 0;
    auto [ptr, ec] = std::from_chars(begin, end, seed);
    if (text.empty() || ec != std::errc() || ptr != end) fail_seed(source, shown);
    return seed;
  }
  const NumericOption& option = numeric_option(key);
  if (option.integer) {
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (text.empty() || ec != std::errc() || ptr != end || value > INT32_MAX || value < INT32_MIN) {
      fail_range(source, key, shown);
    }
    return value;
  }
  char* stop = nullptr;
  errno = 0;
  const double value = std::strtod(begin, &stop);
  if (text.empty() || stop != end || errno == ERANGE || !std::isfinite(value) ||
      std::isspace(static_cast<unsigned char>(text[0]))) {
    fail_range(source, key, shown);
  }
  return value;
}

json parse_job_object(std::string_view text, const std::string& source, int first_line) {
  const std::string where = source + (first_line > 0 ? ":" + std::to_string(first_line) : "");
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw ConfigError(
        where + ": empty; a job is one JSON object, e.g. {\"bundle\": \"models/tiny-sd\", \"prompt\": \"a fox\"}");
  }
  if (!is_utf8(text)) {
    throw ConfigError(where + ": not UTF-8 (JSON is UTF-8: write a text of other bytes as {\"bytes\": HEX})");
  }
  json job;
  try {
    job = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    // Where it went wrong, as file:line:column (the byte before e.byte is the one refused).
    const size_t at = std::min(e.byte > 0 ? e.byte - 1 : 0, text.size());
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < at; ++i) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    const size_t column = at - line_start + 1;
    // nlohmann's words after its own position ("syntax error while parsing object - unexpected
    // '}'; expected string literal").
    std::string detail = e.what();
    if (const auto colon = detail.find(": ", detail.find("parse error")); colon != std::string::npos) {
      detail = detail.substr(colon + 2);
    }
    // A whole file whose first line is a job of its own: JSON Lines, a batch's file.
    std::string hint;
    if (first_line == 0 && line > 1) {
      const std::string_view first_text = text.substr(0, text.find('\n'));
      if (json::parse(first_text.begin(), first_text.end(), nullptr, false, true).is_object())
        hint = "; it holds one job per line (JSON Lines): run them with sdinterp batch";
    }
    throw ConfigError(source + ":" + std::to_string((first_line > 0 ? first_line : 1) + line - 1) + ":" +
                      std::to_string(column) + ": not valid JSON: " + detail + hint);
  } catch (const json::exception& e) {
    // A number too large for any JSON number type (out_of_range 406): nlohmann gives no position.
    std::string detail = e.what();
    if (const auto bracket = detail.find("] "); bracket != std::string::npos) detail = detail.substr(bracket + 2);
    throw ConfigError(where + ": not valid JSON: " + detail);
  }
  if (!job.is_object()) throw ConfigError(where + ": a job must be a JSON object, not " + job.type_name());
  return job;
}

RunConfig parse_job(std::string_view text, const std::string& source) {
  RunConfig c;
  apply_job(parse_job_object(text, source, 0), c, source);
  return c;
}

bool is_utf8(std::string_view s) {
  // The tokenizer's decoder, which knows every ill-formed sequence (overlong forms, surrogates, ...).
  for (size_t i = 0; i < s.size();) {
    const unicode::DecodeStep step = unicode::decode_step(s, i);
    if (!step.valid) return false;
    i += step.length;
  }
  return true;
}

json text_json(const std::string& text) {
  if (is_utf8(text)) return text;
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : text) {
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  return json{{"bytes", hex}};
}

const std::vector<std::string>& job_path_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const JobKey& k : job_key_table()) {
      if (k.paths) out.push_back(k.key);
    }
    return out;
  }();
  return keys;
}

namespace {

std::vector<std::string*> path_fields(RunConfig& c, const std::string& key) {
  for (const JobKey& k : job_key_table()) {
    if (k.key == key && k.paths) return k.paths(c);
  }
  return {};
}

std::filesystem::path metadata_folder(const std::string& metadata_path) {
  return std::filesystem::absolute(metadata_path).lexically_normal().parent_path();
}

}  // namespace

bool is_run_metadata(const json& job) { return job.is_object() && job.contains("sdinterp"); }

void resolve_metadata_paths(RunConfig& c, const std::string& metadata_path) {
  namespace fs = std::filesystem;
  const fs::path folder = metadata_folder(metadata_path);
  const fs::path cwd = fs::current_path();
  for (const std::string& key : job_path_keys()) {
    for (std::string* field : path_fields(c, key)) {
      std::string& value = *field;
      if (value.empty() || fs::path(value).is_absolute()) continue;
      const fs::path resolved = (folder / value).lexically_normal();
      // Shown from the working directory when it lies below it, else absolute.
      const fs::path relative = resolved.lexically_relative(cwd);
      value = !relative.empty() && *relative.begin() != ".." ? relative.string() : resolved.string();
    }
  }
}

void relativize_metadata_paths(json& job, const RunConfig& c, const std::string& metadata_path) {
  namespace fs = std::filesystem;
  const fs::path folder = metadata_folder(metadata_path);
  RunConfig copy = c;
  for (const std::string& key : job_path_keys()) {
    const std::vector<std::string*> fields = path_fields(copy, key);
    for (size_t i = 0; i < fields.size(); ++i) {
      const std::string& value = *fields[i];
      if (value.empty() || fs::path(value).is_absolute()) continue;
      const fs::path relative = fs::absolute(value).lexically_normal().lexically_relative(folder);
      if (relative.empty()) continue;  // another root: as given
      // A folder keeps its trailing slash off; "." for the metadata's own folder.
      json& slot = job[key].is_array() ? job[key][i] : job[key];
      slot = text_json(relative.string());
    }
  }
}

json job_to_json(const RunConfig& c) {
  json j = json::object();
  for (const JobKey& k : job_key_table()) {
    if (k.write) j[k.key] = k.write(c);
  }
  return j;
}

}  // namespace sdinterp
