#include "sdinterp/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/manifest.h"
#include "sdinterp/names.h"
#include "sdinterp/number_text.h"

namespace sdinterp {
namespace {

// One table per named option: its names, in the order help lists them.
const NameTable<WalkMode> kModes("--mode", {{WalkMode::kPromptWalk, "prompt-walk"},
                                            {WalkMode::kSlerpLatent, "slerp-latent"},
                                            {WalkMode::kMultiPrompt, "multi-prompt"},
                                            {WalkMode::kCircular, "circular"},
                                            {WalkMode::kTimeline, "timeline"},
                                            {WalkMode::kImageMorph, "image-morph"}});
const NameTable<Fit> kFits("--fit", {{Fit::kCrop, "crop"}, {Fit::kPad, "pad"}, {Fit::kStretch, "stretch"}});
const NameTable<Inversion> kInversions("--inversion", {{Inversion::kNoise, "noise"}, {Inversion::kDdim, "ddim"}});
const NameTable<Pace> kPaces("--pace", {{Pace::kUniform, "uniform"}, {Pace::kEven, "even"}});
const NameTable<Ease> kEases("--ease", {{Ease::kLinear, "linear"},
                                        {Ease::kSine, "sine"},
                                        {Ease::kCubic, "cubic"},
                                        {Ease::kIn, "in"},
                                        {Ease::kOut, "out"},
                                        {Ease::kHold, "hold"}});
const NameTable<InterpKind> kInterps("--interp", {{InterpKind::kSlerp, "slerp"}, {InterpKind::kLerp, "lerp"}});
const NameTable<SchedulerKind> kSchedulers("--scheduler", {{SchedulerKind::kLms, "lms"},
                                                           {SchedulerKind::kLmsKarras, "lms_karras"},
                                                           {SchedulerKind::kEuler, "euler"},
                                                           {SchedulerKind::kEulerKarras, "euler_karras"},
                                                           {SchedulerKind::kDdim, "ddim"},
                                                           {SchedulerKind::kPndm, "pndm"},
                                                           {SchedulerKind::kDpmpp2m, "dpmpp_2m"},
                                                           {SchedulerKind::kDpmpp2mKarras, "dpmpp_2m_karras"}});
const NameTable<UnetEngine> kUnetEngines("--unet-engine", {{UnetEngine::kAuto, "auto"},
                                                           {UnetEngine::kTorchScript, "torchscript"},
                                                           {UnetEngine::kCompiled, "aoti"}});

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
    {"pace-passes", true, 1, 10, false, "passes measured before the final one, each as long as the walk"},
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

std::string walk_mode_name(WalkMode mode) { return kModes.name(mode); }
WalkMode parse_walk_mode(const std::string& name) { return kModes.parse(name); }
std::string interp_name(InterpKind kind) { return kInterps.name(kind); }
InterpKind parse_interp(const std::string& name) { return kInterps.parse(name); }
std::string ease_name(Ease ease) { return kEases.name(ease); }
Ease parse_ease(const std::string& name, const std::string& option) { return kEases.parse(name, option); }
std::string pace_name(Pace pace) { return kPaces.name(pace); }
Pace parse_pace(const std::string& name) { return kPaces.parse(name); }
std::string fit_name(Fit fit) { return kFits.name(fit); }
Fit parse_fit(const std::string& name) { return kFits.parse(name); }
std::string inversion_name(Inversion inversion) { return kInversions.name(inversion); }
Inversion parse_inversion(const std::string& name) { return kInversions.parse(name); }
std::string scheduler_name(SchedulerKind kind) { return kSchedulers.name(kind); }
SchedulerKind parse_scheduler_kind(const std::string& name) { return kSchedulers.parse(name); }
std::vector<std::string> scheduler_names() { return kSchedulers.names(); }
std::string unet_engine_name(UnetEngine engine) { return kUnetEngines.name(engine); }
UnetEngine parse_unet_engine(const std::string& name) { return kUnetEngines.parse(name); }

std::string device_name(const DeviceChoice& device) {
  switch (device.kind) {
    case DeviceChoice::Kind::kAuto:
      return "auto";
    case DeviceChoice::Kind::kCpu:
      return "cpu";
    case DeviceChoice::Kind::kCuda:
      return device.index < 0 ? "cuda" : "cuda:" + std::to_string(device.index);
  }
  return "auto";
}

DeviceChoice parse_device(const std::string& name) {
  if (name == "auto") return {};
  if (name == "cpu") return {DeviceChoice::Kind::kCpu, -1};
  if (name == "cuda") return {DeviceChoice::Kind::kCuda, -1};
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() <= 8 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos && (name[5] != '0' || name.size() == 6)) {
    return {DeviceChoice::Kind::kCuda, std::stoi(name.substr(5))};
  }
  throw ConfigError("unknown --device \"" + name + "\"; choose one of: auto, cpu, cuda, cuda:N");
}

int strength_steps(int steps, double strength) {
  return std::min(static_cast<int>(static_cast<double>(steps) * strength), steps);
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

std::vector<WalkParams::ResolvedKeyframe> WalkParams::resolved_keyframes() const {
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

int WalkParams::total_frames() const {
  int walk = mode == WalkMode::kMultiPrompt ? frames * std::max<int>(0, static_cast<int>(prompts.size()) - 1) : frames;
  if (mode == WalkMode::kImageMorph) walk = (frames - 1) * std::max<int>(0, static_cast<int>(images.size()) - 1) + 1;
  if (mode == WalkMode::kTimeline) walk = cycle || keyframes.empty() ? frames : keyframes.back().frame + 1;
  return seamless_loop && walk > 1 ? walk - 1 : walk;
}

std::vector<std::string> ModelOptions::problems() const {
  std::vector<std::string> out;
  if (bundle_dir.empty()) out.push_back("--bundle is required (a folder with model.json, e.g. models/tiny-sd)");
  for (const auto& [key, value] :
       std::initializer_list<std::pair<std::string_view, double>>{{"batch", batch}, {"max-vram", max_vram_gb}}) {
    if (std::string problem = range_problem(key, value); !problem.empty()) out.push_back(problem);
  }
  return out;
}

std::vector<std::string> OutputOptions::format_problems() const {
  std::vector<std::string> out;
  for (const auto& [key, value] : std::initializer_list<std::pair<std::string_view, double>>{
           {"fps", fps}, {"loop", loop}, {"quality", quality}, {"crf", crf}}) {
    if (std::string problem = range_problem(key, value); !problem.empty()) out.push_back(problem);
  }
  return out;
}

std::vector<std::string> OutputOptions::problems() const {
  std::vector<std::string> out = format_problems();
  if (png_dir.empty() && output.empty()) out.push_back("nothing to write: give -o FILE.gif and/or --png-dir DIR");
  if (!output.empty() && !known_file_extension(output)) {
    out.push_back(unknown_format_message(output, " (for PNG frames use --png-dir " + output + ")"));
  }
  return out;
}

std::vector<std::string> WalkParams::problems() const {
  std::vector<std::string> out;
  const WalkParams defaults;
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
    if (!cycle && !keyframes.empty() && frames != defaults.frames) {
      out.push_back("--frames " + std::to_string(frames) +
                    " does nothing in a timeline without --cycle: it ends on its last keyframe (" +
                    count_text(keyframes.back().frame + 1, "frame") +
                    "); leave --frames out, or add --cycle to make it the loop's period");
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
  // One walk's options given to another do nothing there: refused when they differ from their
  // defaults (run metadata records every key, defaults included, and must run again as it is).
  auto only_for = [&](bool changed, const std::string& option, WalkMode owner) {
    if (changed && mode != owner) {
      out.push_back(option + " is for --mode " + walk_mode_name(owner) + " (this is --mode " + mode_name + ")");
    }
  };
  only_for(strength != defaults.strength, "--strength " + number_text(strength), WalkMode::kImageMorph);
  only_for(fit != defaults.fit, "--fit " + fit_name(fit), WalkMode::kImageMorph);
  only_for(inversion != defaults.inversion, "--inversion " + inversion_name(inversion), WalkMode::kImageMorph);
  only_for(adain != defaults.adain, "--adain", WalkMode::kImageMorph);
  only_for(step_size != defaults.step_size, "--step-size " + number_text(step_size), WalkMode::kPromptWalk);
  only_for(ease != defaults.ease, "--ease " + ease_name(ease), WalkMode::kTimeline);
  if (pace_passes != defaults.pace_passes && pace != Pace::kEven) {
    out.push_back("--pace-passes " + std::to_string(pace_passes) + " is for --pace even (this is --pace " +
                  pace_name(pace) + ")");
  }
  if (interp != defaults.interp && (mode == WalkMode::kPromptWalk || mode == WalkMode::kCircular)) {
    out.push_back("--interp " + interp_name(interp) +
                  " is for --mode slerp-latent, multi-prompt, timeline and image-morph (this is --mode " + mode_name +
                  ")");
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
    if (inversion == Inversion::kDdim && scheduler != SchedulerKind::kDdim) {
      out.push_back("--inversion ddim samples with DDIM: add --scheduler ddim (this is --scheduler " +
                    scheduler_name(scheduler) + ")");
    }
    if (strength > 0 && strength <= 1 && steps >= 1 && strength_steps(steps, strength) < 1) {
      out.push_back("--strength " + number_text(strength) + " with " + count_text(steps, "step") +
                    " leaves no step to run (strength x steps must be at least 1); raise --strength or --steps");
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
                                                                  {"pace-passes", pace_passes},
                                                                  {"strength", strength}}) {
    if (std::string problem = range_problem(key, value); !problem.empty()) out.push_back(problem);
  }
  if (seamless_loop) {
    // multi-prompt walks its prompts, image-morph its images; a loop comes back to its first.
    const bool morph = mode == WalkMode::kImageMorph;
    const size_t sources = morph ? images.size() : static_cast<size_t>(n);
    const bool same_ends = (mode == WalkMode::kMultiPrompt || morph) && sources >= 2 &&
                           (!morph || images.front() == images.back()) &&
                           (n <= 1 || prompts.front() == prompts.back()) &&
                           (negatives.size() <= 1 || negatives.front() == negatives.back());
    if (mode == WalkMode::kCircular && frames < 3) {
      out.push_back("--seamless-loop leaves out the last frame, and a circular walk of --frames " +
                    std::to_string(frames) +
                    " would keep 1 (its 2 frames are both the start); give --frames 3 or more");
    } else if (same_ends && sources == 2) {
      const std::string what = morph ? "image" : "prompt";
      out.push_back("--seamless-loop needs a walk that comes back: between two equal " + what +
                    "s it stays on one picture; give " + (morph ? "an " : "a ") + what + " between them (--" + what +
                    " A --" + what + " B --" + what + " A)");
    } else if (mode != WalkMode::kCircular && !same_ends) {
      out.push_back(
          "--seamless-loop leaves out a last frame that repeats the first, and this walk's ends differ (they "
          "coincide in --mode circular, in multi-prompt when the last --prompt repeats the first, in image-morph "
          "when the last --image repeats the first; a timeline loops with --cycle)");
    }
  }
  return out;
}

std::vector<std::string> RunConfig::problems() const {
  std::vector<std::string> out = ModelOptions::problems();
  for (const auto& part : {WalkParams::problems(), OutputOptions::problems()})
    out.insert(out.end(), part.begin(), part.end());
  return out;
}

std::vector<std::string> WalkParams::problems_with(const Manifest& manifest) const {
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

void RunConfig::validate_for(const Manifest& manifest) const { throw_if_any(problems_with(manifest)); }

bool env_switch(const char* name, bool otherwise) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return otherwise;
  if (std::string(value) == "0" || std::string(value) == "1") return std::string(value) == "1";
  throw ConfigError(std::string(name) + " is '" + value + "': use 0 or 1 (or leave it unset)");
}

std::string env_choice(const char* name, const std::vector<std::string>& choices) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return "";
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string listed;
  for (size_t i = 0; i < choices.size(); ++i) {
    listed += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  }
  throw ConfigError(std::string(name) + " is '" + value + "': use " + listed + " (or leave it unset)");
}

}  // namespace sdinterp
