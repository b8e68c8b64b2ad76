#include "runtime/execute.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "cli/events.h"
#include "io/atomic_output.h"
#include "io/png_io.h"
#include "sdinterp/bundle_hash.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/job.h"
#include "sdinterp/job_files.h"
#include "sdinterp/schedulers.h"
#include "sdinterp/smoothness.h"
#include "sinks/sink_common.h"

namespace sdinterp::runtime {
namespace {

// A tally of calls by engine, as the metadata records it (unet_calls, decode_calls).
nlohmann::json engine_calls(const Bundle::ModuleCalls& calls) {
  return {{"aoti", calls.compiled}, {"torchscript", calls.torchscript}};
}

using cli::emit_event;

uint64_t random_seed() {
  std::random_device rd;
  // 53 bits: exact as a JSON number in every language.
  return ((static_cast<uint64_t>(rd()) << 32) | rd()) & ((uint64_t{1} << 53) - 1);
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 359999) return "--:--";
  const int s = static_cast<int>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%d:%02d", s / 60, s % 60);
  }
  return buf;
}

// The terminal's width in columns (stderr's), read at every redraw so that a resized window is
// followed; 80 when it cannot be read.
int terminal_columns() {
  struct winsize size {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

// The bar's line for a terminal `columns` wide.
std::string progress_bar_line(int columns, double fraction, const ProgressEvent& e, double eta, bool writing) {
  // The widest form that fits in columns - 1 (a line as wide as the terminal wraps on some).
  const std::string frames = std::to_string(e.frames_done) + "/" + std::to_string(e.frames_total);
  const std::string eta_text = writing && eta < 0 ? "writing" : "ETA " + format_duration(eta);
  const std::vector<std::string> tails = {" frames " + frames + "  UNet calls " + std::to_string(e.calls_done) + "/" +
                                              std::to_string(e.calls_total) + "  " + eta_text,
                                          " frames " + frames + "  " + eta_text, " " + frames + " " + eta_text,
                                          " " + eta_text, ""};
  const int room = std::max(columns - 1, 1);
  for (const std::string& tail : tails) {
    const int bar = room - static_cast<int>(tail.size()) - 2;
    if (bar < 10 && !tail.empty()) continue;
    if (bar < 1) return std::string(static_cast<size_t>(std::min(room, 1)), '.');
    const int filled = std::clamp(static_cast<int>(fraction * bar), 0, bar);
    return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(bar - filled), '.') +
           "]" + tail;
  }
  return "";
}

// Progress on a terminal (a bar on stderr, redrawn in place to the terminal's width) or for
// scripts (JSON events on stdout, cli/events.h). The ETA counts the UNet calls and the decoding
// left, at the rates measured so far in this job, plus the outputs' encoding at the rate measured
// on an earlier job of the session (or a prior); null when it cannot be told.
class ProgressReporter {
 public:
  // `encode_estimate_s`: the outputs' encoding time foreseen.
  ProgressReporter(const UiOptions& ui, double encode_estimate_s)
      : job_(ui.job), encode_estimate_s_(encode_estimate_s) {
    if (ui.progress == cli::Progress::kJson) {
      mode_ = Mode::kJson;
    } else if (ui.progress == cli::Progress::kBar ||
               (ui.progress == cli::Progress::kAuto && !ui.quiet && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO))) {
      mode_ = Mode::kBar;
    }
  }
  ~ProgressReporter() { end_bar(); }
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // A walk's event; its kDone means the frames are rendered and the outputs are being encoded.
  void operator()(const ProgressEvent& e) {
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    if (e.kind == ProgressEvent::Kind::kStep) sampling_s_ += dt;
    if (e.kind == ProgressEvent::Kind::kFrame) decode_s_ += dt;
    if (e.kind == ProgressEvent::Kind::kDone) encode_start_ = now;
    last_event_ = e;
    report(e.kind == ProgressEvent::Kind::kDone ? "encode" : kNames[static_cast<int>(e.kind)]);
  }
  // The outputs are published: the job is done.
  void done() {
    last_event_.kind = ProgressEvent::Kind::kDone;
    finished_ = true;
    report("done");
    end_bar();
  }
  // Seconds the outputs took to encode and publish (from the walk's end to done()).
  double encode_seconds() const { return std::chrono::duration<double>(Clock::now() - encode_start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr const char* kNames[] = {"start", "step", "frame", "encode"};

  // Seconds left, < 0 when unknown.
  double eta() const {
    const ProgressEvent& e = last_event_;
    if (finished_) return 0;
    const bool writing = e.kind == ProgressEvent::Kind::kDone;
    if (writing) {
      const double left = encode_estimate_s_ - encode_seconds();
      return left > 0 ? left : -1;  // longer than foreseen: unknown
    }
    if (e.calls_done == 0) return -1;
    const double per_call = sampling_s_ / static_cast<double>(e.calls_done);
    // Before a frame is decoded, a frame's decode is taken to cost half a UNet call.
    const double per_frame = e.frames_done > 0 ? decode_s_ / static_cast<double>(e.frames_done) : per_call / 2;
    return static_cast<double>(e.calls_total - e.calls_done) * per_call +
           static_cast<double>(e.frames_total - e.frames_done) * per_frame + encode_estimate_s_;
  }

  void report(const char* name) {
    if (mode_ == Mode::kNone) return;
    const ProgressEvent& e = last_event_;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double left = eta();
    if (mode_ == Mode::kJson) {
      emit_event(name, job_,
                 {{"frames_done", e.frames_done},
                  {"frames_total", e.frames_total},
                  {"unet_calls_done", e.calls_done},
                  {"unet_calls_total", e.calls_total},
                  {"elapsed_s", elapsed},
                  {"eta_s", left < 0 ? nlohmann::json(nullptr) : nlohmann::json(left)}});
      return;
    }
    const bool writing = e.kind == ProgressEvent::Kind::kDone && !finished_;
    double fraction = left >= 0 && elapsed + left > 0 ? elapsed / (elapsed + left) : 0;
    if (left < 0 && e.calls_total > 0)
      fraction = static_cast<double>(e.calls_done) / static_cast<double>(e.calls_total);
    if (writing) fraction = std::min(fraction, 0.99);
    if (finished_) fraction = 1;
    std::cerr << "\r" << progress_bar_line(terminal_columns(), fraction, e, left, writing) << "\x1b[K" << std::flush;
    drawn_ = true;
  }
  void end_bar() {
    if (mode_ == Mode::kBar && drawn_) std::cerr << "\n" << std::flush;
    drawn_ = false;
  }

  enum class Mode { kNone, kBar, kJson } mode_ = Mode::kNone;
  nlohmann::json job_;
  double encode_estimate_s_;
  Clock::time_point start_ = Clock::now(), last_ = start_, encode_start_ = start_;
  double sampling_s_ = 0, decode_s_ = 0;
  ProgressEvent last_event_;
  bool drawn_ = false, finished_ = false;
};

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

namespace fs = std::filesystem;

// The paths name the same file or folder (both may not exist yet).
bool same_place(const std::string& a, const std::string& b) { return path_key(a) == path_key(b); }

// Every clash of a job's outputs that can be known before rendering: two outputs on one path, a
// frames folder that already holds frames, existing files without --overwrite (checked again,
// atomically, when they are published).
void check_outputs(const RunConfig& c, const std::string& meta) {
  if (!c.output.empty() && !c.png_dir.empty() && same_place(c.output, c.png_dir)) {
    throw ConfigError("-o " + c.output + " and --png-dir " + c.png_dir +
                      " name the same path; give them different names");
  }
  for (const std::string& out : {c.output, c.png_dir}) {
    if (!out.empty() && same_place(out, meta)) {
      throw ConfigError(out + " is also where the run's metadata goes (" + meta + "); give another name");
    }
  }
  // The outputs the user named before their metadata: when both exist, those are the ones to hear about.
  if (!c.output.empty()) io::check_can_write(c.output, c.overwrite);
  if (!c.png_dir.empty()) refuse_folder_of_frames(c.png_dir, c.overwrite, "--png-dir " + c.png_dir);
  io::check_can_write(meta, c.overwrite);
}

// Frames a job moved into a folder that was there before: frame_0000 ... (twice as many at most,
// played forward and back, their names as wide as the count written needs); without --overwrite
// none of these names existed before.
void remove_frames(const std::string& dir, size_t frames) {
  std::error_code ec;
  const long most = 2 * static_cast<long>(frames);
  for (int digits = png_frame_digits(1); digits <= png_frame_digits(most); ++digits) {
    for (long i = 0; i < most; ++i) fs::remove(fs::path(dir) / png_frame_name(i, digits), ec);
  }
}

// A job's outputs appear together or not at all. Rendering writes every output to a hidden
// temporary; publishing then renames them into place: first a marker listing them, then the
// metadata, then each output, then the marker goes. A failure on the way removes what was
// published; a process killed outright (SIGKILL) leaves the marker, and the next run of the job
// (recover_interrupted_publish) removes what it lists. So every visible output has its metadata
// beside it, and the metadata without all its outputs exists only while the marker says why.
class PublishedOutputs {
 public:
  ~PublishedOutputs() {
    if (!done_) roll_back();
  }
  // Wraps `sink`, which writes the file or frames folder `path`: its finish() (called by the walk)
  // is held back until publish().
  std::unique_ptr<FrameSink> track(std::unique_ptr<FrameSink> sink, const std::string& path, bool frames_folder) {
    std::error_code ec;
    places_.push_back(std::make_unique<Place>(Place{path, frames_folder, fs::exists(path, ec)}));
    return std::make_unique<Tracked>(std::move(sink), *places_.back());
  }
  // Publishes the metadata (already written to its temporary) and then every output.
  void publish(const std::string& meta, io::AtomicFile& metadata) {
    marker_ = publish_marker_path(meta);
    nlohmann::json list = {
        {"metadata", text_json(meta)}, {"files", nlohmann::json::array()}, {"frames", nlohmann::json::array()}};
    for (const auto& p : places_) {
      if (p->frames_folder) {
        list["frames"].push_back({{"dir", text_json(p->path)}, {"existed", p->existed}, {"frames", p->frames}});
      } else {
        list["files"].push_back(text_json(p->path));
      }
    }
    const std::string text = list.dump();
    io::write_file(marker_, text.data(), text.size());
    // Held while publishing: a run of the same job elsewhere leaves a live marker alone.
    marker_lock_ = ::open(marker_.c_str(), O_RDONLY | O_CLOEXEC);
    if (marker_lock_ >= 0) ::flock(marker_lock_, LOCK_EX | LOCK_NB);
    metadata.commit();
    meta_ = meta;
    for (const auto& p : places_) {
      p->sink->finish();
      p->published = true;
    }
    done_ = true;
    std::error_code ec;
    fs::remove(marker_, ec);
    unlock_marker();
  }

 private:
  struct Place {
    std::string path;
    bool frames_folder;
    bool existed;
    bool published = false;
    size_t frames = 0;
    FrameSink* sink = nullptr;
  };
  class Tracked : public FrameSink {
   public:
    Tracked(std::unique_ptr<FrameSink> inner, Place& place) : inner_(std::move(inner)), place_(place) {
      place_.sink = inner_.get();
    }
    void begin(int width, int height, int frame_count) override { inner_->begin(width, height, frame_count); }
    void add(const Frame& frame) override {
      inner_->add(frame);
      ++place_.frames;
    }
    void finish() override {}  // publish() does it
    void abort() override { inner_->abort(); }
    std::string description() const override { return inner_->description(); }

   private:
    std::unique_ptr<FrameSink> inner_;
    Place& place_;
  };
  void unlock_marker() {
    if (marker_lock_ >= 0) ::close(marker_lock_);
    marker_lock_ = -1;
  }
  void roll_back() {
    std::error_code ec;
    for (const auto& p : places_) {
      if (!p->published) continue;
      if (p->frames_folder && p->existed) {
        remove_frames(p->path, p->frames);
      } else {
        fs::remove_all(p->path, ec);
      }
    }
    if (!meta_.empty()) fs::remove(meta_, ec);
    if (!marker_.empty()) fs::remove(marker_, ec);
    unlock_marker();
  }
  std::vector<std::unique_ptr<Place>> places_;
  std::string marker_, meta_;
  int marker_lock_ = -1;
  bool done_ = false;
};

// A job whose publishing was cut short by SIGKILL or a power cut left its marker: what it lists
// (the metadata and the outputs published before the cut) is removed, so the job runs anew.
bool recover_interrupted_publish(const std::string& meta) {
  const std::string marker = publish_marker_path(meta);
  std::error_code ec;
  if (!fs::exists(marker, ec)) return false;
  const int lock = ::open(marker.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) {  // a live run is publishing
    if (lock >= 0) ::close(lock);
    return false;
  }
  std::ifstream in(marker, std::ios::binary);
  const nlohmann::json list = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto text = [](const nlohmann::json& v) {
    std::string path;
    return text_from_json(v, path) ? path : std::string();
  };
  if (list.is_object()) {
    for (const auto& f : list.value("files", nlohmann::json::array())) fs::remove(text(f), ec);
    for (const auto& d : list.value("frames", nlohmann::json::array())) {
      if (d.value("existed", true)) {
        remove_frames(text(d["dir"]), d.value("frames", size_t{0}));
      } else {
        fs::remove_all(text(d["dir"]), ec);
      }
    }
  }
  fs::remove(meta, ec);
  fs::remove(marker, ec);
  ::close(lock);
  return true;
}

// The run's CUDA memory peaks by phase in GiB (RunResult), or null on the CPU.
nlohmann::json cuda_memory_peaks_json(const RunResult& r) {
  if (r.peak_allocated_sampling < 0 && r.peak_allocated_decode < 0) return nullptr;
  auto gib = [](int64_t bytes) { return bytes < 0 ? nlohmann::json(nullptr) : nlohmann::json(bytes / 1073741824.0); };
  return {{"sampling", {{"allocated", gib(r.peak_allocated_sampling)}, {"reserved", gib(r.peak_reserved_sampling)}}},
          {"decode", {{"allocated", gib(r.peak_allocated_decode)}, {"reserved", gib(r.peak_reserved_decode)}}}};
}

// --pace even's weights as metadata records them: one per frame, null where not re-placed.
nlohmann::json pace_weights_json(const std::vector<double>& weights) {
  nlohmann::json out = nlohmann::json::array();
  for (double w : weights) out.push_back(std::isnan(w) ? nlohmann::json(nullptr) : nlohmann::json(w));
  return out;
}

// The files whose hashes differ between what run metadata recorded and the bundle now ("" when
// they agree; "unet.pt, model.json"). `current` gives the bundle's hashes with the recorded
// algorithm (metadata of older sdinterp builds records FNV-1a).
std::string differing_files(const nlohmann::json& recorded,
                            const std::function<nlohmann::json(const FileHashAlgorithm&)>& current) {
  if (!recorded.is_object() || !recorded.contains("files")) return "";
  const std::string algorithm_name = recorded.value("algorithm", "");
  const FileHashAlgorithm* algorithm = find_file_hash_algorithm(algorithm_name);
  if (algorithm == nullptr) {
    return "every file (a hash algorithm this sdinterp does not know: '" + algorithm_name + "')";
  }
  const nlohmann::json now = current(*algorithm);
  std::set<std::string> names;
  const nlohmann::json& a = recorded["files"];
  const nlohmann::json& b = now["files"];
  if (!a.is_object()) return "every file";
  for (const auto& [name, hash] : a.items()) {
    if (!b.contains(name) || b[name] != hash) names.insert(name);
  }
  for (const auto& [name, hash] : b.items()) {
    if (!a.contains(name)) names.insert(name);
  }
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  return list;
}

std::string cache_key(const ModelOptions& model) {
  return model.bundle_dir + "\n" + device_name(model.device) + "\n" + unet_engine_name(model.unet_engine);
}

// Before any work, the model load included: nothing of an earlier run is clobbered or left beside
// the outputs, the output's format is known, and options for formats the job does not write are
// said (once a session each).
void prepare_outputs(BundleCache& cache, const RunConfig& c, const UiOptions& ui, const std::string& meta) {
  if (recover_interrupted_publish(meta) && !ui.quiet) {
    std::cerr << "sdinterp: removed the outputs of a run of this job that was killed while publishing them\n";
  }
  check_outputs(c, meta);
  // What an earlier run killed outright (SIGKILL, a power cut) left beside these outputs.
  for (const std::string& out : {c.output, c.png_dir, meta}) {
    if (!out.empty() && io::remove_stale_temporaries(out) > 0 && !ui.quiet) {
      std::cerr << "sdinterp: removed temporaries an interrupted run left beside " << out << "\n";
    }
  }
  const nlohmann::json set = job_to_json(c), defaults = job_to_json(RunConfig());
  std::vector<std::string> given;
  for (const std::string& key : format_option_keys()) {
    if (set.at(key) != defaults.at(key)) given.push_back(key);
  }
  for (const std::string& warning : ignored_format_options(given, c.output, c.png_dir)) {
    // Once a session per option ("--dither applies to .gif only"), whichever job met it first.
    if (cache.warned.insert(warning.substr(0, warning.find(';'))).second) {
      std::cerr << "sdinterp: warning: " << warning << "\n";
    }
  }
}

// The smoothness report, on the frames as written (a closed loop's last frame leads to its first).
class MeterSink : public FrameSink {
 public:
  explicit MeterSink(bool cycle) : meter(cycle) {}
  void begin(int, int, int) override {}
  void add(const Frame& frame) override { meter.add(frame); }
  void finish() override {}
  void abort() override {}
  std::string description() const override { return ""; }
  SmoothnessMeter meter;
};

// A package that cannot be used is said once per loaded bundle: with --unet-engine aoti the UNet's
// is an error (check_engine); the VAE decoder's is never required.
void warn_unusable_packages(BundleCache& cache, const ModelOptions& cached_as, const Bundle& bundle,
                            UnetEngine engine) {
  const bool unet_unusable = engine == UnetEngine::kAuto && !bundle.compiled_unet_problem().empty();
  const bool decoder_unusable = !bundle.compiled_vae_decoder_problem().empty();
  if (!(unet_unusable || decoder_unusable) || !cache.first_warning(cached_as)) return;
  if (unet_unusable)
    std::cerr << "sdinterp: warning: " << bundle.compiled_unet_problem() << "; the UNet runs from TorchScript\n";
  if (decoder_unusable) {
    std::cerr << "sdinterp: warning: " << bundle.compiled_vae_decoder_problem()
              << "; the VAE decoder runs from TorchScript\n";
  }
}

// What encoding the job's outputs will take, for the progress line's estimate. Until a job of the
// session has measured it, encoding is taken to cost 0.2 s per million pixels of frames (GIF,
// WebP, MP4 and PNG all measured 0.2-0.27 on 2 cores of the development machine, `sdinterp encode`
// of 30 512x512 frames).
double encode_estimate_s(const BundleCache& cache, const std::string& output_kinds, const RunConfig& c) {
  constexpr double kEncodeSecondsPerPixelPrior = 0.2e-6;
  const auto rate = cache.encode_seconds_per_pixel.find(output_kinds);
  return (rate == cache.encode_seconds_per_pixel.end() ? kEncodeSecondsPerPixelPrior : rate->second) *
         static_cast<double>(c.width) * c.height * c.total_frames();
}

nlohmann::json bundle_load_json(const Bundle::LoadSeconds& s) {
  return {
      {"text_encoder", s.text_encoder},
      {"unet", s.unet},
      {"vae_decoder", s.vae_decoder},
      {"weights",
       {{"text_encoder", s.weights.text_encoder}, {"unet", s.weights.unet}, {"vae_decoder", s.weights.vae_decoder}}},
      {"compiled_unet", s.compiled_unet},
      {"compiled_vae_decoder", s.compiled_vae_decoder},
      {"cuda_context", s.cuda_context},
      {"cuda_warm_up", s.cuda_warm_up},
      {"total", s.total}};
}

// The run metadata's "sdinterp" record: what this run used and measured. `bundle_path` is the
// job's bundle as the metadata records it.
nlohmann::json run_record(const Bundle& bundle, const RunConfig& c, const RunResult& r, const nlohmann::json& hashes,
                          const nlohmann::json& bundle_path, const SmoothnessMeter& smoothness,
                          const nlohmann::json& image_hashes) {
  nlohmann::json record = {
      {"version", SDINTERP_VERSION},
      {"libtorch", TORCH_VERSION},
      {"created", now_iso8601()},
      {"device", bundle.device().str()},
      {"dtype", bundle.manifest().dtype},
      {"frames_written", r.frames},
      {"unet_calls", engine_calls(r.unet_calls)},
      {"decode_calls", engine_calls(r.decode_calls)},
      {"decode_chunk", r.decode_chunk},
      {"bundle_load_s", bundle_load_json(bundle.load_seconds())},
      {"cuda_memory_peaks_gib", cuda_memory_peaks_json(r)},
      {"timings_s",
       {{"text", r.seconds_text},
        {"sampling", r.seconds_sampling},
        {"decode", r.seconds_decode},
        {"total", r.seconds_total}}},
      {"bundle", {{"path", bundle_path}, {"manifest", bundle.manifest().raw}, {"hashes", hashes}}},
      {"smoothness", smoothness.report()},
      {"pace",
       {{"pace", pace_name(c.pace)},
        {"measuring_passes", c.pace == Pace::kEven ? c.pace_passes : 0},
        {"extra_unet_calls", r.pace_extra_unet_calls},
        {"seconds", r.seconds_pacing},
        {"weights", pace_weights_json(r.pace_weights)}}},
  };
  if (!image_hashes.is_null()) record["images"] = image_hashes;
  return record;
}

// The image-morph inputs' hashes, in the job's order: {"algorithm", "files": [hash, ...]}; null
// without images.
nlohmann::json image_hashes(const RunConfig& c, const FileHashAlgorithm& algorithm = recorded_file_hash_algorithm()) {
  if (c.images.empty()) return nullptr;
  nlohmann::json files = nlohmann::json::array();
  for (const std::string& path : c.images) {
    try {
      files.push_back(algorithm.file(path));
    } catch (const std::exception&) {
      files.push_back(nullptr);  // unreadable: the walk says so when it reads the image
    }
  }
  return {{"algorithm", algorithm.name}, {"files", files}};
}

// The images (as the job names them) whose hashes differ from the recorded ones, comma-separated;
// "" when all match or nothing was recorded. `used`: image_hashes(c), taken as it is when the
// recorded algorithm is its own (the files are read again only for another algorithm).
std::string differing_images(const nlohmann::json& recorded, const RunConfig& c, const nlohmann::json& used) {
  if (!recorded.is_object() || !recorded.contains("files") || !recorded["files"].is_array()) return "";
  const std::string name = recorded.value("algorithm", "");
  const FileHashAlgorithm* algorithm = find_file_hash_algorithm(name);
  const nlohmann::json now = algorithm == nullptr                                      ? nlohmann::json()
                             : used.is_object() && name == used.value("algorithm", "") ? used
                                                                                       : image_hashes(c, *algorithm);
  std::string list;
  for (size_t i = 0; i < c.images.size(); ++i) {
    const bool same = !now.is_null() && i < recorded["files"].size() && recorded["files"][i] == now["files"][i] &&
                      !now["files"][i].is_null();
    if (!same) list += (list.empty() ? "" : ", ") + c.images[i];
  }
  return list;
}

}  // namespace

void BundleCache::refresh(const ModelOptions& model) {
  auto it = entries_.find(cache_key(model));
  if (it != entries_.end() && !changed_files(model.bundle_dir, it->second.files).empty()) entries_.erase(it);
}

std::string BundleCache::changed_since_load(const ModelOptions& model) {
  return changed_files(model.bundle_dir, entry(model).files);
}

BundleCache::Entry& BundleCache::entry(const ModelOptions& model) {
  const std::string key = cache_key(model);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    Entry e;
    // The file hashes go into the run metadata only at the end: they are computed on a thread of
    // their own while the bundle loads and the walk runs (XXH64 reads about 4.8 GB/s on one core of
    // the development machine, and an SD-1.5 bundle is 2.1 GB in float16).
    const std::string dir = model.bundle_dir;
    Manifest manifest = load_manifest(dir);
    e.files = file_signatures(dir, hashed_bundle_files(dir, manifest));
    e.hashes = std::async(std::launch::async, [dir, manifest] { return bundle_hashes(dir, manifest); }).share();
    // The process-wide LibTorch settings are made here, the one place, before any bundle loads.
    configure_torch(manifest);
    e.bundle = std::make_unique<Bundle>(Bundle::load(dir, std::move(manifest), model.device, model.unet_engine));
    ++loads_;
    it = entries_.emplace(key, std::move(e)).first;
  }
  return it->second;
}

const Bundle& BundleCache::get(const ModelOptions& model) { return *entry(model).bundle; }
bool BundleCache::first_warning(const ModelOptions& model) {
  Entry& e = entry(model);
  return !std::exchange(e.warned, true);
}
std::shared_future<nlohmann::json> BundleCache::hashes(const ModelOptions& model) { return entry(model).hashes; }

JobOutcome execute_job(BundleCache& cache, RunConfig c, const UiOptions& ui, bool (*interrupted)()) {
  c.validate();
  const bool drawn_seed = !c.seed;
  if (drawn_seed) c.seed = random_seed();
  const std::string meta = metadata_path(c);
  prepare_outputs(cache, c, ui, meta);
  PublishedOutputs published;
  const FrameSinkOptions& sink_options = c;
  std::vector<std::unique_ptr<FrameSink>> owned;
  if (!c.output.empty()) owned.push_back(published.track(make_file_sink(c.output, sink_options), c.output, false));
  if (!c.png_dir.empty()) owned.push_back(published.track(make_png_dir_sink(c.png_dir, sink_options), c.png_dir, true));
  std::vector<FrameSink*> sinks;
  for (auto& s : owned) sinks.push_back(s.get());
  MeterSink smoothness((c.mode == WalkMode::kTimeline && c.cycle) || c.seamless_loop);
  sinks.push_back(&smoothness);

  // The input images are read once before the bundle loads (seconds for a large model), so that a
  // missing or unreadable image is said at once; the walk reads them again.
  for (const std::string& image : c.images) io::read_input_image(image);
  const ModelOptions cached_as = c;  // the cache's key: `c` records the device resolved below
  cache.refresh(cached_as);
  const Bundle& bundle = cache.get(cached_as);
  if (interrupted != nullptr && interrupted()) throw InterruptedError();
  const std::shared_future<nlohmann::json> hashes = cache.hashes(cached_as);  // waited for at the end
  const std::string bundle_changed_words = "the bundle's files differ from the ones the run metadata records (";
  const auto hashes_with = [&](const FileHashAlgorithm& algorithm) {
    return &algorithm == &recorded_file_hash_algorithm() ? hashes.get()
                                                         : bundle_hashes(c.bundle_dir, bundle.manifest(), algorithm);
  };
  if (ui.strict && !ui.expected_hashes.is_null()) {
    const std::string differ = differing_files(ui.expected_hashes, hashes_with);
    if (!differ.empty()) {
      throw ModelError(bundle_changed_words + differ + "); the frames would not repeat the recorded run (--strict)");
    }
  }
  const std::string images_changed_words = "the images differ from the ones the run metadata records (";
  const nlohmann::json images_used = image_hashes(c);
  if (!ui.expected_image_hashes.is_null()) {
    const std::string differ = differing_images(ui.expected_image_hashes, c, images_used);
    if (!differ.empty() && ui.strict) {
      throw IoError(images_changed_words + differ + "); the frames would not repeat the recorded run (--strict)");
    }
    if (!differ.empty()) {
      std::cerr << "sdinterp: warning: " << images_changed_words << differ
                << "); the frames may differ from the recorded run (--strict refuses such a run)\n";
    }
  }
  const Manifest& m = bundle.manifest();
  c.validate_for(m);
  warn_unusable_packages(cache, cached_as, bundle, c.unet_engine);
  // Metadata records what was actually used, defaults resolved.
  if (c.height == 0) c.height = m.native_size();
  if (c.width == 0) c.width = m.native_size();
  c.device = parse_device(bundle.device().str());
  if (c.max_vram_gb > 0 && !bundle.device().is_cuda() && cache.warned.insert("--max-vram").second) {
    std::cerr << "sdinterp: warning: --max-vram applies to CUDA only; on the CPU the batch is planned from "
                 "the available memory\n";
  }

  if (drawn_seed && !ui.quiet)
    std::cerr << "sdinterp: seed " << *c.seed << " (drawn at random; pass --seed to repeat)\n";
  std::string output_kinds = fs::path(c.output).extension().string() + (c.png_dir.empty() ? "" : " png");
  ProgressReporter progress(ui, encode_estimate_s(cache, output_kinds, c));
  RunHooks hooks;
  hooks.progress = [&progress](const ProgressEvent& e) { progress(e); };
  hooks.warning = [](const std::string& w) { std::cerr << "sdinterp: warning: " << w << "\n"; };
  hooks.interrupted = [interrupted] { return interrupted != nullptr && interrupted(); };
  JobOutcome outcome;
  outcome.result = run_walk(bundle, c, sinks, hooks);
  c.batch = outcome.result.batch;

  if (!ui.strict && !ui.expected_hashes.is_null()) {
    const std::string differ = differing_files(ui.expected_hashes, hashes_with);
    if (!differ.empty()) {
      std::cerr << "sdinterp: warning: " << bundle_changed_words << differ
                << "); the frames may differ from the recorded run (--strict refuses such a run)\n";
    }
  }
  // The frames came from the files as loaded, and the hashes are of the files as read: both hold
  // only if no file changed in between (once the hashing has read them all).
  hashes.wait();
  const std::string changed = cache.changed_since_load(cached_as);
  if (!changed.empty()) {
    throw ModelError("the bundle's files changed while this job used them (" + changed +
                     "): its frames may mix old and new weights and its metadata may not record the files it "
                     "used, so nothing was written; run it again");
  }
  // Likewise the input images: hashed before the walk read them, they must still be those files.
  if (!images_used.is_null()) {
    const std::string differ = differing_images(images_used, c, image_hashes(c));
    if (!differ.empty()) {
      throw IoError("the images changed while this job used them (" + differ +
                    "): its frames may not be the recorded images', so nothing was written; run it again");
    }
  }
  nlohmann::json metadata = job_to_json(c);
  relativize_metadata_paths(metadata, c, meta);
  const RunResult& r = outcome.result;
  metadata["sdinterp"] = run_record(bundle, c, r, hashes.get(), metadata["bundle"], smoothness.meter, images_used);
  if (hooks.interrupted()) throw InterruptedError();
  // Every text is UTF-8 by now (text_json); replace is a last guard against an internal error.
  const std::string meta_text = metadata.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  io::AtomicFile meta_file(meta, c.overwrite);
  io::write_all(meta_file.fd(), meta_text.data(), meta_text.size(), meta);
  if (hooks.interrupted()) throw InterruptedError();
  published.publish(meta, meta_file);
  const double pixels = static_cast<double>(r.frames) * r.width * r.height;
  if (pixels > 0) cache.encode_seconds_per_pixel[output_kinds] = progress.encode_seconds() / pixels;
  progress.done();
  for (const std::string& path : {c.output, c.png_dir}) {
    if (path.empty()) continue;
    outcome.outputs.push_back({path, owned[outcome.outputs.size()]->description()});
  }
  outcome.metadata = meta;
  return outcome;
}

nlohmann::json result_json(const JobOutcome& o) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& out : o.outputs)
    outputs.push_back({{"path", text_json(out.path)}, {"description", text_json(out.description)}});
  return {{"outputs", outputs},
          {"metadata", text_json(o.metadata)},
          {"frames", o.result.frames},
          {"width", o.result.width},
          {"height", o.result.height},
          {"seed", o.result.seed},
          {"seconds", o.result.seconds_total}};
}

}  // namespace sdinterp::runtime
