// One run's settings in three parts with one lifetime each: the model (ModelOptions: what loads and
// runs the bundle), the walk (WalkParams: what is rendered) and the outputs (OutputOptions: where
// the frames go, the formats' settings). Filled by the CLI (flags) or a job file, names parsed
// into enums at that edge, validated once (RunConfig::validate). No torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sdinterp/frame_sink.h"

namespace sdinterp {

struct Manifest;

enum class WalkMode { kPromptWalk, kSlerpLatent, kMultiPrompt, kCircular, kTimeline, kImageMorph };
enum class InterpKind { kSlerp, kLerp };
// How a timeline segment moves from its keyframe to the next: t = ease(u), u in [0, 1).
enum class Ease { kLinear, kSine, kCubic, kIn, kOut, kHold };
// Where a walk's frames sit: uniform (evenly spaced weights, the notebook's) or even (weights
// re-placed so that consecutive frames are equally far apart, measured on a rendered pass).
enum class Pace { kUniform, kEven };
// image-morph: how an image is brought to the walk's size. crop: scaled to cover, centre cropped;
// pad: scaled to fit inside, centred on white; stretch: scaled to the size, aspect not kept.
enum class Fit { kCrop, kPad, kStretch };
// image-morph: how an image's latent reaches the walk's first noise level. noise: the scheduler's
// add_noise with one noise tensor drawn from the seed (diffusers' img2img); ddim: deterministic
// DDIM inversion with the UNet (then DDIM sampling).
enum class Inversion { kNoise, kDdim };
// The diffusers schedulers sdinterp implements (sdinterp/schedulers.h).
enum class SchedulerKind { kLms, kLmsKarras, kEuler, kEulerKarras, kDdim, kPndm, kDpmpp2m, kDpmpp2mKarras };
// Which UNet runs the denoising calls. kAuto: the bundle's AOTInductor package for the calls it
// accepts (batch and latent size), TorchScript for the rest and when the bundle has none or it
// cannot be loaded here; kCompiled: the same, but a package that is missing or cannot be loaded is
// an error; kTorchScript: never the package.
enum class UnetEngine { kAuto, kTorchScript, kCompiled };
// Where the model runs: auto (the device the bundle was traced for), the CPU, or a CUDA device
// (index -1: "cuda", the current one).
struct DeviceChoice {
  enum class Kind { kAuto, kCpu, kCuda } kind = Kind::kAuto;
  int index = -1;
  bool operator==(const DeviceChoice& o) const { return kind == o.kind && index == o.index; }
};

std::string walk_mode_name(WalkMode mode);
WalkMode parse_walk_mode(const std::string& name);  // ConfigError listing the valid names
std::string interp_name(InterpKind kind);
InterpKind parse_interp(const std::string& name);  // ConfigError listing the valid names
std::string pace_name(Pace pace);
Pace parse_pace(const std::string& name);  // ConfigError listing the valid names
std::string fit_name(Fit fit);
Fit parse_fit(const std::string& name);  // ConfigError listing the valid names
std::string inversion_name(Inversion inversion);
Inversion parse_inversion(const std::string& name);  // ConfigError listing the valid names
std::string ease_name(Ease ease);
Ease parse_ease(const std::string& name, const std::string& option = "--ease");  // ConfigError listing the valid names
// "lms", "lms_karras", "euler", "euler_karras", "ddim", "pndm", "dpmpp_2m", "dpmpp_2m_karras".
std::string scheduler_name(SchedulerKind kind);
SchedulerKind parse_scheduler_kind(const std::string& name);  // ConfigError listing the valid names
std::vector<std::string> scheduler_names();
// "auto", "torchscript", "aoti".
std::string unet_engine_name(UnetEngine engine);
UnetEngine parse_unet_engine(const std::string& name);  // ConfigError listing the valid names
// "auto", "cpu", "cuda", "cuda:N".
std::string device_name(const DeviceChoice& device);
DeviceChoice parse_device(const std::string& name);  // ConfigError listing the valid forms
// The value of an on/off environment variable (SDINTERP_CUDNN_BENCHMARK and the like): 1 on, 0 off,
// unset or empty `otherwise`; anything else a ConfigError saying so.
bool env_switch(const char* name, bool otherwise);
// 1: as --verbose (LibTorch's whole message when the model fails).
constexpr const char* kVerboseVariable = "SDINTERP_VERBOSE";
// The value of an environment variable that names one of `choices` (SDINTERP_SDPA_FIRST): unset or
// empty "", anything else a ConfigError listing them.
std::string env_choice(const char* name, const std::vector<std::string>& choices);
// image-morph: of `steps`, the ones run from an image at `strength`, as diffusers' img2img counts
// them: int(steps * strength), at most steps.
int strength_steps(int steps, double strength);
// linear u; sine (1 - cos(pi u)) / 2; cubic 3u^2 - 2u^3; in 1 - cos(pi u / 2); out sin(pi u / 2); hold 0.
double ease_value(Ease ease, double u);

// One keyframe of a timeline (--mode timeline), as the job gives it: what is left out is taken
// from the job (negative), the previous keyframe (seed) or the job's ease.
struct Keyframe {
  int frame = 0;  // absolute index: the first is 0, then strictly increasing
  std::string prompt;
  std::optional<std::string> negative;
  std::optional<uint64_t> seed;
  std::optional<Ease> ease;  // of the segment that starts here
};

// The accepted values of each numeric option, one row each (src/config.cpp): RunConfig::problems(),
// the readers of flags and job files, `encode` and the README take their limits and words from
// here. A format may refuse part of a range (a GIF plays at most 50 fps): the sinks say so.
struct NumericOption {
  std::string_view key;  // the job key; the flag is "--" + key
  bool integer;
  double min, max;
  bool above_min;         // min itself is excluded (fps)
  std::string_view note;  // what a special value means ("0: automatic"), or ""
};
const std::vector<NumericOption>& numeric_options();
// The row of `key`; std::logic_error for a key without one.
const NumericOption& numeric_option(std::string_view key);
// "" when `value` is accepted, else "--KEY takes RANGE, not VALUE".
std::string range_problem(std::string_view key, double value);
// How the range reads in messages and help: "a whole number from 2 to 100000", "a number above 0,
// up to 1000", with the note in brackets.
std::string range_text(const NumericOption& option);
// The largest seed: seeds are any unsigned 64-bit number, as torch.manual_seed takes them.
constexpr const char* kMaxSeedText = "18446744073709551615";

// What loads and runs the model. A batch keeps a loaded bundle for the jobs with the same
// bundle_dir, device and unet_engine.
struct ModelOptions {
  std::string bundle_dir;
  DeviceChoice device;
  UnetEngine unet_engine = UnetEngine::kAuto;
  int batch = 0;           // frames per UNet call; 0: chosen automatically
  double max_vram_gb = 0;  // CUDA: cap on device memory for the automatic batch; 0: none

  std::vector<std::string> problems() const;
};

// The walk: what is rendered, frame by frame.
struct WalkParams {
  WalkMode mode = WalkMode::kSlerpLatent;
  std::vector<std::string> prompts;
  std::vector<std::string> negatives;  // none: "" for all; one: for all prompts; or one per prompt
  std::optional<uint64_t> seed;        // drawn at random (and reported) when absent
  int frames = 30;                     // multi-prompt: frames per pair of prompts
  int steps = 15;
  double guidance = 8.0;
  int height = 0;  // 0: the bundle's native size (documented; metadata records the size used)
  int width = 0;
  double step_size = 0.001;  // prompt-walk: added to the embeddings per frame
  InterpKind interp = InterpKind::kSlerp;
  SchedulerKind scheduler = SchedulerKind::kLms;
  // Leave out the last frame, which repeats the first (circular; multi-prompt ending on its first
  // prompt): a looping animation then shows no frame twice. One frame fewer is written.
  bool seamless_loop = false;
  // --mode timeline: the keyframes; `cycle` closes the walk back to the first keyframe at index
  // `frames` (the period); `ease` is the keyframes' default.
  std::vector<Keyframe> keyframes;
  bool cycle = false;
  Ease ease = Ease::kLinear;
  Pace pace = Pace::kUniform;
  int pace_passes = 1;  // --pace even: measuring passes before the final one
  // --mode image-morph: the images (PNG or JPEG, two or more; alpha composited on white), their fit
  // to the walk's size, the img2img strength (the share of the steps that is run), the inversion,
  // and AdaIN (between images, each latent channel's mean and standard deviation interpolated).
  std::vector<std::string> images;
  Fit fit = Fit::kCrop;
  double strength = 0.6;
  Inversion inversion = Inversion::kNoise;
  bool adain = false;

  // Every problem of the walk that needs no model, each naming its option.
  std::vector<std::string> problems() const;
  // The problems that need the bundle's manifest (size multiples).
  std::vector<std::string> problems_with(const Manifest& manifest) const;

  // A timeline's keyframes with every default filled in (the seed must be set): their seed,
  // negative and ease, and `source`: keyframes with the same seed, prompt and negative share one
  // latent and conditioning, numbered 0, 1, ... in order of first appearance.
  struct ResolvedKeyframe {
    int frame;
    std::string prompt, negative;
    uint64_t seed;
    Ease ease;
    int source;
  };
  std::vector<ResolvedKeyframe> resolved_keyframes() const;

  // Total frames the run produces (multi-prompt: frames * (prompts - 1); image-morph:
  // (frames - 1) * (images - 1) + 1; one fewer with seamless_loop).
  int total_frames() const;
};

// Where the frames go: an animation file and/or a folder of PNG frames, with the formats'
// settings (FrameSinkOptions: fps, loop, dither, quality, crf, ...). `sdinterp encode` checks
// the same part, so both take the same values.
struct OutputOptions : FrameSinkOptions {
  std::string output;   // .gif, .webp or .mp4
  std::string png_dir;  // DIR/frame_0000.png, ...

  // Range problems of the format settings (each format refuses part of them when the sink is made).
  std::vector<std::string> format_problems() const;
  // format_problems() and "nothing to write".
  std::vector<std::string> problems() const;
};

struct RunConfig : ModelOptions, WalkParams, OutputOptions {
  // Every problem of the three parts that needs no model ("" when fine).
  std::vector<std::string> problems() const;
  // Throws ConfigError with all problems on one line: called once, where a job is read.
  void validate() const;
  // Throws ConfigError with the problems that need the loaded bundle's manifest (problems_with).
  void validate_for(const Manifest& manifest) const;
};

}  // namespace sdinterp
