#include "sdinterp/config.h"

#include <cmath>
#include <stdexcept>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"
#include "sdinterp/number_text.h"

namespace sdinterp {
namespace {

const std::pair<WalkMode, const char*> kModes[] = {
    {WalkMode::kPromptWalk, "prompt-walk"},
    {WalkMode::kSlerpLatent, "slerp-latent"},
    {WalkMode::kMultiPrompt, "multi-prompt"},
    {WalkMode::kCircular, "circular"},
};

const std::pair<InterpKind, const char*> kInterps[] = {
    {InterpKind::kSlerp, "slerp"},
    {InterpKind::kLerp, "lerp"},
};

template <typename Enum, size_t N>
Enum parse_named(const std::pair<Enum, const char*> (&table)[N], const std::string& name, const char* option) {
  std::string list;
  for (const auto& [value, text] : table) {
    if (name == text) return value;
    list += list.empty() ? text : std::string(", ") + text;
  }
  throw ConfigError(std::string("unknown ") + option + " \"" + name + "\"; choose one of: " + list);
}

template <typename Enum, size_t N>
std::string name_of(const std::pair<Enum, const char*> (&table)[N], Enum value) {
  for (const auto& [v, text] : table) {
    if (v == value) return text;
  }
  return "?";
}

void throw_if_any(const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string line;
  for (const auto& p : problems) line += (line.empty() ? "" : "; ") + p;
  throw ConfigError(line);
}

const std::vector<NumericOption> kNumericOptions = {
    {"frames", true, 2, 100000, false, ""},
    {"steps", true, 1, 1000, false, ""},
    {"guidance", false, 0, 100, false, "1 or less: no guidance"},
    {"height", true, 0, 16384, false, "0: the bundle's native size"},
    {"width", true, 0, 16384, false, "0: the bundle's native size"},
    {"step-size", false, -1000, 1000, false, ""},
    {"batch", true, 0, 100000, false, "0: automatic"},
    {"max-vram", false, 0, 1e6, false, "GiB; 0: no cap"},
    // The widest any format takes (WebP's millisecond durations); GIF and MP4 take less.
    {"fps", false, 0, 1000, true, ""},
    {"loop", true, 0, 65536, false, "0: forever"},
    {"quality", false, 0, 100, false, ""},
    {"crf", true, 0, 51, false, "lower is better; 0: lossless, High 4:4:4 profile, which many browsers cannot play"},
};

}  // namespace

const std::vector<NumericOption>& numeric_options() { return kNumericOptions; }

const NumericOption& numeric_option(std::string_view key) {
  for (const auto& o : kNumericOptions) {
    if (o.key == key) return o;
  }
  throw std::logic_error("no numeric option \"" + std::string(key) + "\"");
}

std::string range_text(const NumericOption& o) {
  std::string text = std::string(o.integer ? "a whole number " : "a number ") +
                     (o.above_min ? "above " + number_text(o.min) + ", up to " + number_text(o.max)
                                  : "from " + number_text(o.min) + " to " + number_text(o.max));
  if (!o.note.empty()) text += " (" + std::string(o.note) + ")";
  return text;
}

std::string range_problem(std::string_view key, double value) {
  const NumericOption& o = numeric_option(key);
  const bool low = o.above_min ? !(value > o.min) : !(value >= o.min);
  if (!low && value <= o.max && (!o.integer || value == std::floor(value))) return "";
  return "--" + std::string(key) + " takes " + range_text(o) + ", not " + number_text(value);
}

std::string walk_mode_name(WalkMode mode) { return name_of(kModes, mode); }
WalkMode parse_walk_mode(const std::string& name) { return parse_named(kModes, name, "--mode"); }
std::string interp_name(InterpKind kind) { return name_of(kInterps, kind); }
InterpKind parse_interp(const std::string& name) { return parse_named(kInterps, name, "--interp"); }

int RunConfig::total_frames() const {
  const int walk = mode == WalkMode::kMultiPrompt ? frames * std::max<int>(0, static_cast<int>(prompts.size()) - 1) : frames;
  return seamless_loop && walk > 1 ? walk - 1 : walk;
}

std::vector<std::string> RunConfig::problems() const {
  std::vector<std::string> out;
  if (bundle_dir.empty()) out.push_back("--bundle is required (a folder with model.json, e.g. models/tiny-sd)");
  const int n = static_cast<int>(prompts.size());
  const std::string mode_name = walk_mode_name(mode);
  if (mode == WalkMode::kMultiPrompt) {
    if (n < 2) out.push_back("--mode multi-prompt needs at least 2 --prompt (got " + std::to_string(n) + ")");
    if (!negatives.empty() && negatives.size() != 1 && static_cast<int>(negatives.size()) != n) {
      out.push_back("--negative given " + std::to_string(negatives.size()) + " times; give it once (for all prompts) or once per --prompt (" +
                    std::to_string(n) + ")");
    }
  } else {
    if (n != 1) out.push_back("--mode " + mode_name + " needs exactly 1 --prompt (got " + std::to_string(n) + ")");
    if (negatives.size() > 1) {
      out.push_back("--mode " + mode_name + " takes at most 1 --negative (got " + std::to_string(negatives.size()) + ")");
    }
  }
  for (const auto& [key, value] : std::initializer_list<std::pair<std::string_view, double>>{
           {"frames", frames}, {"steps", steps}, {"guidance", guidance}, {"height", height}, {"width", width},
           {"step-size", step_size}, {"batch", batch}, {"max-vram", max_vram_gb}, {"fps", fps}, {"loop", loop},
           {"quality", quality}, {"crf", crf}}) {
    if (std::string problem = range_problem(key, value); !problem.empty()) out.push_back(problem);
  }
  if (seamless_loop) {
    const bool ends_coincide =
        mode == WalkMode::kCircular ||
        (mode == WalkMode::kMultiPrompt && n >= 3 && prompts.front() == prompts.back() &&
         (negatives.size() <= 1 || negatives.front() == negatives.back()));
    if (!ends_coincide) {
      out.push_back("--seamless-loop leaves out a last frame that repeats the first, and this walk's ends differ (they "
                    "coincide in --mode circular, and in multi-prompt when the last --prompt repeats the first)");
    }
  }
  if (unet_engine != "auto" && unet_engine != "torchscript" && unet_engine != "aoti") {
    out.push_back("unknown --unet-engine \"" + unet_engine + "\"; choose one of: auto, torchscript, aoti");
  }
  if (dither != "diffusion" && dither != "ordered" && dither != "none") {
    out.push_back("unknown --dither \"" + dither + "\"; choose one of: diffusion, ordered, none");
  }
  if (png_dir.empty() && output.empty()) out.push_back("nothing to write: give -o FILE.gif and/or --png-dir DIR");
  return out;
}

std::vector<std::string> RunConfig::problems_with(const Manifest& manifest) const {
  std::vector<std::string> out;
  const int factor = manifest.vae.scale_factor;
  // The UNet's own limit, for bundles traced before the exporter took every size.
  const int step = factor * std::max(1, manifest.unet.latent_multiple);
  for (const auto& [value, name] : {std::pair<int, const char*>{height, "--height"}, {width, "--width"}}) {
    if (value == 0) continue;
    if (value % factor != 0 || value < factor) {
      out.push_back(std::string(name) + " " + std::to_string(value) + " is not a multiple of " + std::to_string(factor) +
                    " (the bundle's VAE scale factor); try " + std::to_string(std::max(factor, value / factor * factor)));
    } else if (value % step != 0) {
      const int below = value / step * step;
      out.push_back(std::string(name) + " " + std::to_string(value) + ": this bundle's UNet takes sizes in steps of " +
                    std::to_string(step) + " px (it was traced for them); try " +
                    (below > 0 ? std::to_string(below) + " or " : std::string()) + std::to_string(below + step) +
                    ", or re-export the bundle with scripts/export_bundle.py, whose bundles take every multiple of " +
                    std::to_string(factor));
    }
  }
  return out;
}

void RunConfig::validate() const { throw_if_any(problems()); }

void RunConfig::validate(const Manifest& manifest) const {
  auto all = problems();
  auto more = problems_with(manifest);
  all.insert(all.end(), more.begin(), more.end());
  throw_if_any(all);
}

}  // namespace sdinterp
