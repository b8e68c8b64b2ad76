#include "sdinterp/job.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "sdinterp/errors.h"
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

// A name (mode, interp, pace, ease) read by `parse`, its error prefixed with the job's source.
template <typename Parse>
auto get_named(const json& v, const std::string& source, const std::string& key, Parse parse) {
  const std::string name = get_string(v, source, key);
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
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 100000) {
        throw ConfigError(prefix(source) + name + " takes a whole number from 0 to 100000, not " + value.dump());
      }
      k.frame = value.get<int>();
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
      if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
        throw ConfigError(prefix(source) + name + " takes a whole number from 0 to " + kMaxSeedText + ", not " +
                          value.dump());
      }
      k.seed = value.get<uint64_t>();
    } else if (key == "ease") {
      if (!value.is_string()) throw ConfigError(prefix(source) + name + " must be a string");
      k.ease = parse_ease(value.get<std::string>(), which + " ease");
    } else {
      throw ConfigError(prefix(source) + which + ": unknown key \"" + key + "\"" +
                        key_suggestion(key, keyframe_keys()));
    }
  }
  if (!has_frame) throw ConfigError(prefix(source) + which + " has no \"frame\" (its index in the walk)");
  if (!has_prompt) throw ConfigError(prefix(source) + which + " has no \"prompt\"");
  return k;
}

// Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean \"guidance\"?)" for a key a few edits from one of `known_keys` (the job keys by
// default); the general advice otherwise.
std::string key_suggestion(const std::string& key, const std::vector<std::string>& known_keys) {
  std::string lower = key;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::replace(lower.begin(), lower.end(), '_', '-');
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& known : known_keys) {
    const size_t distance = edit_distance(lower, known);
    if (best == nullptr || distance < best_distance) {
      best = &known;
      best_distance = distance;
    }
  }
  if (best != nullptr && best_distance <= std::max<size_t>(1, best->size() / 3))
    return " (did you mean \"" + *best + "\"?)";
  for (const std::string& known : known_keys) {  // a key cut short: "seamless", "unet"
    if (lower.size() >= 3 && known.rfind(lower, 0) == 0) return " (did you mean \"" + known + "\"?)";
  }
  if (&known_keys != &job_keys()) {
    std::string list;
    for (const std::string& k : known_keys) list += (list.empty() ? "" : ", ") + k;
    return " (its keys: " + list + ")";
  }
  return " (job keys are the generate flags' names, e.g. \"step-size\"; keys starting with _ are comments)";
}

}  // namespace

const std::vector<std::string>& job_keys() {
  static const std::vector<std::string> keys = {
      "bundle",      "mode",   "prompt",    "negative",    "seed",      "frames",    "steps",         "guidance",
      "height",      "width",  "step-size", "interp",      "scheduler", "batch",     "max-vram",      "device",
      "unet-engine", "output", "png-dir",   "fps",         "loop",      "boomerang", "seamless-loop", "keyframes",
      "cycle",       "ease",   "pace",      "pace-passes", "image",     "fit",       "strength",      "inversion",
      "adain",       "dither", "lossless",  "quality",     "crf",       "overwrite"};
  return keys;
}

void apply_job(const json& job, RunConfig& c, const std::string& source) {
  if (!job.is_object()) throw ConfigError(prefix(source) + "a job must be a JSON object");
  for (const auto& [key, v] : job.items()) {
    if (key == "sdinterp") continue;              // metadata written by sdinterp: information only
    if (!key.empty() && key[0] == '_') continue;  // a comment: "_note": "..."
    if (key == "bundle")
      c.bundle_dir = get_string(v, source, key);
    else if (key == "mode")
      c.mode = get_named(v, source, key, parse_walk_mode);
    else if (key == "prompt")
      c.prompts = get_strings(v, source, key);
    else if (key == "negative")
      c.negatives = get_strings(v, source, key);
    else if (key == "seed") {
      if (v.is_null()) {
        c.seed.reset();
      } else {
        if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) fail_seed(source, v.dump());
        c.seed = v.get<uint64_t>();
      }
    } else if (key == "frames")
      c.frames = get_int(v, source, key);
    else if (key == "steps")
      c.steps = get_int(v, source, key);
    else if (key == "guidance")
      c.guidance = get_number(v, source, key);
    else if (key == "height")
      c.height = get_int(v, source, key);
    else if (key == "width")
      c.width = get_int(v, source, key);
    else if (key == "step-size")
      c.step_size = get_number(v, source, key);
    else if (key == "interp")
      c.interp = get_named(v, source, key, parse_interp);
    else if (key == "scheduler")
      c.scheduler = get_string(v, source, key);
    else if (key == "batch")
      c.batch = get_int(v, source, key);
    else if (key == "max-vram")
      c.max_vram_gb = get_number(v, source, key);
    else if (key == "device")
      c.device = get_string(v, source, key);
    else if (key == "unet-engine")
      c.unet_engine = get_string(v, source, key);
    else if (key == "output")
      c.output = get_string(v, source, key);
    else if (key == "png-dir")
      c.png_dir = get_string(v, source, key);
    else if (key == "fps")
      c.fps = get_number(v, source, key);
    else if (key == "loop")
      c.loop = get_int(v, source, key);
    else if (key == "boomerang")
      c.boomerang = get_bool(v, source, key);
    else if (key == "seamless-loop")
      c.seamless_loop = get_bool(v, source, key);
    else if (key == "dither")
      c.dither = get_string(v, source, key);
    else if (key == "lossless")
      c.lossless = get_bool(v, source, key);
    else if (key == "quality")
      c.quality = get_number(v, source, key);
    else if (key == "crf")
      c.crf = get_int(v, source, key);
    else if (key == "overwrite")
      c.overwrite = get_bool(v, source, key);
    else if (key == "keyframes") {
      if (!v.is_array()) throw ConfigError(prefix(source) + "\"keyframes\" must be an array of keyframe objects");
      c.keyframes.clear();
      for (size_t i = 0; i < v.size(); ++i) c.keyframes.push_back(get_keyframe(v[i], source, i));
    } else if (key == "cycle")
      c.cycle = get_bool(v, source, key);
    else if (key == "pace")
      c.pace = get_named(v, source, key, parse_pace);
    else if (key == "pace-passes")
      c.pace_passes = get_int(v, source, key);
    else if (key == "image")
      c.images = get_strings(v, source, key);
    else if (key == "fit")
      c.fit = get_named(v, source, key, parse_fit);
    else if (key == "strength")
      c.strength = get_number(v, source, key);
    else if (key == "inversion")
      c.inversion = get_named(v, source, key, parse_inversion);
    else if (key == "adain")
      c.adain = get_bool(v, source, key);
    else if (key == "ease")
      c.ease = get_named(v, source, key, [](const std::string& name) { return parse_ease(name); });
    else
      throw ConfigError(prefix(source) + "unknown key \"" + key + "\"" + key_suggestion(key, job_keys()));
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
      throw ConfigError(shown + ": unknown \"" + part + "\"; after the frame come seed=N, ease=NAME, negative=TEXT");
    }
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
    throw ConfigError(source + ":" + std::to_string((first_line > 0 ? first_line : 1) + line - 1) + ":" +
                      std::to_string(column) + ": not valid JSON: " + detail);
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
  static const std::vector<std::string> keys = {"bundle", "output", "png-dir", "image"};
  return keys;
}

namespace {

std::vector<std::string*> path_fields(RunConfig& c, const std::string& key) {
  if (key == "bundle") return {&c.bundle_dir};
  if (key == "output") return {&c.output};
  if (key == "png-dir") return {&c.png_dir};
  std::vector<std::string*> out;
  if (key == "image") {
    for (std::string& image : c.images) out.push_back(&image);
  }
  return out;
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
  auto texts = [](const std::vector<std::string>& items) {
    json out = json::array();
    for (const auto& t : items) out.push_back(text_json(t));
    return out;
  };
  json j = json::object();
  j["bundle"] = text_json(c.bundle_dir);
  j["mode"] = walk_mode_name(c.mode);
  j["prompt"] = texts(c.prompts);
  j["negative"] = texts(c.negatives);
  j["seed"] = c.seed ? json(*c.seed) : json(nullptr);
  j["frames"] = c.frames;
  j["steps"] = c.steps;
  j["guidance"] = c.guidance;
  j["height"] = c.height;
  j["width"] = c.width;
  j["step-size"] = c.step_size;
  j["interp"] = interp_name(c.interp);
  j["scheduler"] = text_json(c.scheduler);
  j["batch"] = c.batch;
  j["max-vram"] = c.max_vram_gb;
  j["device"] = text_json(c.device);
  j["unet-engine"] = text_json(c.unet_engine);
  j["output"] = text_json(c.output);
  j["png-dir"] = text_json(c.png_dir);
  j["fps"] = c.fps;
  j["loop"] = c.loop;
  j["boomerang"] = c.boomerang;
  j["seamless-loop"] = c.seamless_loop;
  json keyframes = json::array();
  for (const Keyframe& k : c.keyframes) {
    json one = {{"frame", k.frame}, {"prompt", text_json(k.prompt)}};
    if (k.negative) one["negative"] = text_json(*k.negative);
    if (k.seed) one["seed"] = *k.seed;
    if (k.ease) one["ease"] = ease_name(*k.ease);
    keyframes.push_back(one);
  }
  j["keyframes"] = keyframes;
  j["cycle"] = c.cycle;
  j["ease"] = ease_name(c.ease);
  j["pace"] = pace_name(c.pace);
  j["pace-passes"] = c.pace_passes;
  j["image"] = texts(c.images);
  j["fit"] = fit_name(c.fit);
  j["strength"] = c.strength;
  j["inversion"] = inversion_name(c.inversion);
  j["adain"] = c.adain;
  j["dither"] = text_json(c.dither);
  j["lossless"] = c.lossless;
  j["quality"] = c.quality;
  j["crf"] = c.crf;
  // "overwrite" is left out on purpose: repeating a run from its metadata must not clobber.
  return j;
}

}  // namespace sdinterp
