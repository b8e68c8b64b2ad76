// Where finished frames go: PNG files, GIF, ... Frames arrive in order, one at a time, as they
// are decoded. No torch. A sink writes its output whole or not at all: it writes to a temporary
// name in the destination folder and renames in finish(); abort() (or destruction without
// finish()) removes the temporary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdinterp {

struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // 8-bit RGB, row-major, width * height * 3 bytes
};

// How a GIF places its 256 colours between palette entries.
enum class Dither {
  kNone,       // nearest colour: lowest noise, but smooth gradients band
  kOrdered,    // a fixed blue-noise threshold pattern: never crawls, compresses well
  kDiffusion,  // error diffusion, stabilised against the previous frame
};

struct FrameSinkOptions {
  double fps = 10.0;
  int loop = 0;                        // times the animation plays (GIF/WebP), 0 = forever
  bool overwrite = false;              // replace an existing output
  bool boomerang = false;              // play forward then back, end frames not repeated (animations)
  Dither dither = Dither::kDiffusion;  // GIF only
  bool lossless = false;               // WebP: lossless instead of lossy
  double quality = 90;                 // WebP lossy quality, 0..100
  int crf = 18;                        // MP4 (H.264) constant rate factor, 0..51, lower is better
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Called once before the first frame with the animation's size and frame count.
  virtual void begin(int width, int height, int frame_count) = 0;
  virtual void add(const Frame& frame) = 0;
  // Completes the output (atomic rename). Throws IoError on failure, leaving nothing behind.
  virtual void finish() = 0;
  // Gives up: removes any temporary. Safe to call at any time, also after finish() (no-op then).
  virtual void abort() = 0;
  // What finish() produced (for the result line and metadata).
  virtual std::string description() const = 0;
};

// Writes DIR/frame_0000.png, DIR/frame_0001.png, ... (lossless). The folder is created if
// needed; frames go to a hidden temporary folder beside it and are moved in at finish(). Without
// options.overwrite a folder that already holds frames is refused here, before any work (IoError).
std::unique_ptr<FrameSink> make_png_dir_sink(const std::string& dir, const FrameSinkOptions& options);

// A PNG frames folder's names: frame_0000.png ... with the index zero-padded to 4 digits, or to
// as many as the last index has (frame_00000.png ... frame_12345.png), so that the names sort in
// the order the frames play (a shell's frame_*.png, `sdinterp encode DIR/frame_*.png`, included).
int png_frame_digits(long frame_count);
std::string png_frame_name(long index, int digits);
// What every frame's name begins with (a folder's earlier frames are recognised by it).
constexpr const char* kPngFramePrefix = "frame_";
// Unless `overwrite`, refuses a folder that already holds frames: IoError "<named> already holds
// frames (<its first frame>); pass --overwrite ..." (`named`: "--png-dir DIR", "output folder DIR").
void refuse_folder_of_frames(const std::string& dir, bool overwrite, const std::string& named);

// Chooses the sink from the file extension (.gif, .webp, .mp4). Throws ConfigError listing
// the supported ones. Invalid options (fps, quality, ...) throw ConfigError here, before any
// work is done.
std::unique_ptr<FrameSink> make_file_sink(const std::string& path, const FrameSinkOptions& options);

// The file extensions make_file_sink accepts, for help texts: ".gif, .webp, .mp4".
std::string supported_file_extensions();
// Whether make_file_sink knows the path's extension; its words for another one, ending with the
// caller's folder form (", or a folder ending in / for PNG frames"), or for a name that is an
// extension alone ('-o .gif', no name before it).
bool known_file_extension(const std::string& path);
std::string unknown_format_message(const std::string& path, const std::string& folder_form = "");
// Each animated format's highest --fps, for --fps's help: "GIF: up to 50, WebP: up to 1000, MP4: up to 240".
std::string fps_limits_text();

// The format options that only some outputs read, and a warning for each of `given_keys` (job
// keys the user set) that no output of a run reads: `output_file` (.gif, .webp, .mp4; "" for
// none) and `png_dir` ("" for none). E.g. "--crf applies to .mp4 only; a.gif ignores it".
std::vector<std::string> ignored_format_options(const std::vector<std::string>& given_keys,
                                                const std::string& output_file, const std::string& png_dir);
// The keys ignored_format_options knows (its table's options).
std::vector<std::string> format_option_keys();

// --dither's names: "diffusion", "ordered", "none" (its table is in src/sinks/file_sink.cpp).
// parse_dither throws ConfigError listing them.
Dither parse_dither(const std::string& name);
std::string dither_name(Dither dither);

}  // namespace sdinterp
