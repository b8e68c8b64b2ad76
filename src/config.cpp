#include "sdinterp/config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"
#include "sdinterp/number_text.h"

namespace sdinterp {
namespace {

const std::pair<WalkMode, const char*> kModes[] = {
    {WalkMode::kPromptWalk, "prompt-walk"},   {WalkMode::kSlerpLatent, "slerp-latent"},
    {WalkMode::kMultiPrompt, "multi-prompt"}, {WalkMode::kCircular, "circular"},
    {WalkMode::kTimeline, "timeline"},        {WalkMode::kImageMorph, "image-morph"},
};

const std::pair<Fit, const char*> kFits[] = {{Fit::kCrop, "crop"}, {Fit::kPad, "pad"}, {Fit::kStretch, "stretch"}};

const std::pair<Inversion, const char*> kInversions[] = {{Inversion::kNoise, "noise"}, {Inversion::kDdim, "ddim"}};

const std::pair<Pace, const char*> kPaces[] = {{Pace::kUniform, "uniform"}, {Pace::kEven, "even"}};

const std::pair<Ease, const char*> kEases[] = {
    {Ease::kLinear, "linear"}, {Ease::kSine, "sine"}, {Ease::kCubic, "cubic"},
    {Ease::kIn, "in"},         {Ease::kOut, "out"},   {Ease::kHold, "hold"},
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
    {"strength", false, 0, 1, true, "1: every step"},
    {"pace-passes", true, 1, 10, false, "--pace even: passes measured before the final one, each as long as the walk"},
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
std::string ease_name(Ease ease) { return name_of(kEases, ease); }
std::string pace_name(Pace pace) { return name_of(kPaces, pace); }
std::string fit_name(Fit fit) { return name_of(kFits, fit); }
Fit parse_fit(const std::string& name) { return parse_named(kFits, name, "--fit"); }
std::string inversion_name(Inversion inversion) { return name_of(kInversions, inversion); }
Inversion parse_inversion(const std::string& name) { return parse_named(kInversions, name, "--inversion"); }

int strength_steps(int steps, double strength) {
  return std::min(static_cast<int>(static_cast<double>(steps) * strength), steps);
}
Pace parse_pace(const std::string& name) { return parse_named(kPaces, name, "--pace"); }
Ease parse_ease(const std::string& name, const std::string& option) {
  return parse_named(kEases, name, option.c_str());
}

double ease_value(Ease ease, double u) {
  switch (ease) {
    case Ease::kLinear:
      return u;
    case Ease::kSine:
      return (1 - std::cos(M_PI * u)) / 2;
    case Ease::kCubic:
      return 3 * u * u - 2 * u * u * u;
    case Ease::kIn:
      return 1 - std::cos(M_PI * u / 2);
    case Ease::kOut:
      return std::sin(M_PI * u / 2);
    case Ease::kHold:
      return 0;
  }
  return u;
}

std::vector<RunConfig::ResolvedKeyframe> RunConfig::resolved_keyframes() const {
  std::vector<ResolvedKeyframe> out;
  const std::string job_negative = negatives.empty() ? "" : negatives.front();
  for (const Keyframe& k : keyframes) {
    ResolvedKeyframe r{k.frame,
                       k.prompt,
                       k.negative.value_or(job_negative),
                       k.seed ? *k.seed : (out.empty() ? seed.value_or(0) : out.back().seed),
                       k.ease.value_or(ease),
                       0};
    int sources = 0;
    r.source = -1;
    for (const ResolvedKeyframe& before : out) {
      sources = std::max(sources, before.source + 1);
      if (r.source < 0 && before.seed == r.seed && before.prompt == r.prompt && before.negative == r.negative) {
        r.source = before.source;
      }
    }
    if (r.source < 0) r.source = sources;
    out.push_back(r);
  }
  return out;
}

int RunConfig::total_frames() const {
  int walk = mode == WalkMode::kMultiPrompt ? frames * std::max<int>(0, static_cast<int>(prompts.size()) - 1) : frames;
  if (mode == WalkMode::kImageMorph) walk = (frames - 1) * std::max<int>(0, static_cast<int>(images.size()) - 1) + 1;
  if (mode == WalkMode::kTimeline) walk = cycle || keyframes.empty() ? frames : keyframes.back().frame + 1;
  return seamless_loop && walk > 1 ? walk - 1 : walk;
}

std::vector<std::string> RunConfig::problems() const {
  std::vector<std::string> out;
  if (bundle_dir.empty()) out.push_back("--bundle is required (a folder with model.json, e.g. models/tiny-sd)");
  const int n = static_cast<int>(prompts.size());
  const std::string mode_name = walk_mode_name(mode);
  if (mode == WalkMode::kTimeline) {
    if (n > 0) out.push_back("--mode timeline takes its prompts from the keyframes, not --prompt");
    if (negatives.size() > 1) out.push_back("--mode timeline takes at most 1 --negative (the keyframes' default)");
    if (keyframes.size() < 2) {
      out.push_back("--mode timeline needs at least 2 keyframes (got " + std::to_string(keyframes.size()) +
                    "), e.g. --keyframe \"0:a red fox\" --keyframe \"24:a white owl\"");
    }
    for (size_t i = 0; i < keyframes.size(); ++i) {
      const Keyframe& k = keyframes[i];
      const std::string which = "keyframe " + std::to_string(i + 1);
      if (i == 0 && k.frame != 0)
        out.push_back(which + " is at frame " + std::to_string(k.frame) + "; the first keyframe is at frame 0");
      if (i > 0 && k.frame <= keyframes[i - 1].frame) {
        out.push_back(which + " is at frame " + std::to_string(k.frame) + ", not after keyframe " + std::to_string(i) +
                      " (frame " + std::to_string(keyframes[i - 1].frame) + "); frames must increase");
      }
      if (k.frame < 0 || k.frame > 100000)
        out.push_back(which + ": frame takes a whole number from 0 to 100000, not " + std::to_string(k.frame));
    }
    if (cycle && !keyframes.empty() && frames <= keyframes.back().frame) {
      out.push_back("--cycle: --frames (the period, " + std::to_string(frames) +
                    ") must exceed the last keyframe's frame (" + std::to_string(keyframes.back().frame) + ")");
    }
  } else {
    if (!keyframes.empty()) out.push_back("keyframes are for --mode timeline (this is --mode " + mode_name + ")");
    if (cycle) out.push_back("--cycle is for --mode timeline (this is --mode " + mode_name + ")");
  }
  if (mode != WalkMode::kImageMorph && !images.empty()) {
    out.push_back("--image is for --mode image-morph (this is --mode " + mode_name + ")");
  }
  if (mode == WalkMode::kMultiPrompt) {
    if (n < 2) out.push_back("--mode multi-prompt needs at least 2 --prompt (got " + std::to_string(n) + ")");
    if (!negatives.empty() && negatives.size() != 1 && static_cast<int>(negatives.size()) != n) {
      out.push_back("--negative given " + std::to_string(negatives.size()) +
                    " times; give it once (for all prompts) or once per --prompt (" + std::to_string(n) + ")");
    }
  } else if (mode == WalkMode::kImageMorph) {
    const int k = static_cast<int>(images.size());
    if (k < 2) {
      out.push_back("--mode image-morph needs at least 2 --image (got " + std::to_string(k) +
                    "), e.g. --image a.png --image b.jpg");
    }
    if (n == 0) {
      out.push_back("--mode image-morph needs --prompt: once for all images or once per --image (\"\" is allowed)");
    } else if (n != 1 && n != k) {
      out.push_back("--prompt given " + std::to_string(n) +
                    " times; give it once (for all images) or once per --image (" + std::to_string(k) + ")");
    }
    if (!negatives.empty() && negatives.size() != 1 && static_cast<int>(negatives.size()) != k) {
      out.push_back("--negative given " + std::to_string(negatives.size()) +
                    " times; give it once (for all images) or once per --image (" + std::to_string(k) + ")");
    }
    if (inversion == Inversion::kDdim && scheduler != "ddim") {
      out.push_back("--inversion ddim samples with DDIM: add --scheduler ddim (this is --scheduler " + scheduler + ")");
    }
    if (strength > 0 && strength <= 1 && steps >= 1 && strength_steps(steps, strength) < 1) {
      out.push_back("--strength " + number_text(strength) + " with " + std::to_string(steps) +
                    " steps leaves no step to run (strength x steps must be at least 1); raise --strength or --steps");
    }
  } else if (mode != WalkMode::kTimeline) {
    if (n != 1) out.push_back("--mode " + mode_name + " needs exactly 1 --prompt (got " + std::to_string(n) + ")");
    if (negatives.size() > 1) {
      out.push_back("--mode " + mode_name + " takes at most 1 --negative (got " + std::to_string(negatives.size()) +
                    ")");
    }
  }
  for (const auto& [key, value] :
       std::initializer_list<std::pair<std::string_view, double>>{{"frames", frames},
                                                                  {"steps", steps},
                                                                  {"guidance", guidance},
                                                                  {"height", height},
                                                                  {"width", width},
                                                                  {"step-size", step_size},
                                                                  {"batch", batch},
                                                                  {"max-vram", max_vram_gb},
                                                                  {"fps", fps},
                                                                  {"loop", loop},
                                                                  {"quality", quality},
                                                                  {"crf", crf},
                                                                  {"pace-passes", pace_passes},
                                                                  {"strength", strength}}) {
    if (std::string problem = range_problem(key, value); !problem.empty()) out.push_back(problem);
  }
  if (seamless_loop) {
    const bool ends_coincide = mode == WalkMode::kCircular ||
                               (mode == WalkMode::kMultiPrompt && n >= 3 && prompts.front() == prompts.back() &&
                                (negatives.size() <= 1 || negatives.front() == negatives.back())) ||
                               (mode == WalkMode::kImageMorph && images.size() >= 3 &&
                                images.front() == images.back() && (n <= 1 || prompts.front() == prompts.back()) &&
                                (negatives.size() <= 1 || negatives.front() == negatives.back()));
    if (!ends_coincide) {
      out.push_back(
          "--seamless-loop leaves out a last frame that repeats the first, and this walk's ends differ (they "
          "coincide in --mode circular, in multi-prompt when the last --prompt repeats the first, in image-morph "
          "when the last --image repeats the first; a timeline loops with --cycle)");
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
      out.push_back(std::string(name) + " " + std::to_string(value) + " is not a multiple of " +
                    std::to_string(factor) + " (the bundle's VAE scale factor); try " +
                    std::to_string(std::max(factor, value / factor * factor)));
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
