// Colour quantization for GIF: a palette per frame, kept stable by starting each frame's
// k-means from the previous frame's palette, and a mapper that dithers and turns pixels into
// transparent "unchanged" pixels when the colour already on screen is as good.
//
// Why a palette per frame and not one shared palette: a morph moves through colours that no
// single 256-colour table covers well (a shared table built over the whole walk spends its
// entries on every frame at once and needs a first pass over all frames). Each frame gets its
// own 255 colours, so quality is that of a still image; because k-means starts from the
// previous palette and the content changes little between frames, the palette drifts rather
// than jumps, and the "keep what is on screen" rule hides what drift remains. It also streams:
// a frame needs only the previous palette and the previous shown image.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

using Rgb = std::array<uint8_t, 3>;

// A colour of a frame's histogram with the number of pixels it stands for.
struct ColorPoint {
  std::array<float, 3> c;
  float w;
};

// A frame's colour table and how well it fits the frame: the root mean square distance of the
// frame's colours to their nearest entries (0 when the frame has no other colours, which then
// map losslessly). The mapper scales its dithering and its size-for-accuracy trades by it.
struct Palette {
  std::vector<Rgb> colors;
  float rms_error = 0;
};

// Builds one palette per frame. Not thread-safe; frames must come in display order.
class PaletteBuilder {
 public:
  explicit PaletteBuilder(int max_colors);
  // The palette for `frame`, at most max_colors entries.
  Palette build(const Frame& frame);

 private:
  int max_colors_;
  // The previous frame's result: its palette as k-means centroids (the next frame starts
  // from them), as colours, and the weighted colour points it was built from.
  std::vector<std::array<float, 3>> centroids_;
  Palette palette_;
  std::vector<ColorPoint> points_;
};

// Nearest palette entry in RGB, exact, for many queries against one palette. The colour cube
// is cut into cells; each cell, on first use, lists the entries that can be nearest to some
// point inside it, so a query scans a handful of entries instead of all 255. Fine cells (4
// levels a side) take their lists from coarse cells (16 levels a side), which are built from
// the whole palette: building is cheap at both levels, and only cells in use are built.
class NearestColor {
 public:
  // `queries`: about how many lookups will follow. Few lookups (a small frame, a k-means over few
  // colours) scan every entry instead: building cells would cost more than it saves, since
  // scattered queries each build their own. Either way the answer is the same entry.
  explicit NearestColor(const std::vector<Rgb>& palette, size_t queries = kManyQueries);
  explicit NearestColor(const std::vector<std::array<float, 3>>& colors, size_t queries = kManyQueries);
  static constexpr size_t kManyQueries = ~static_cast<size_t>(0);
  // Each component is clamped to 0..255 first.
  int find(float r, float g, float b) {
    int count = 0;
    const uint16_t* list = near(r, g, b, count);
    return nearest_of(list, count, r, g, b);
  }
  // find() through the coarse cells only: cheaper for points that are each looked up once
  // (k-means over histogram bins), where building a fine cell per point would not pay.
  int find_once(float r, float g, float b);
  // find() for an integer colour, through a cache (images repeat colours).
  int find_cached(int r, int g, int b);
  // The entries that can be nearest around (r, g, b): the nearest one and its close rivals.
  const uint16_t* near(float& r, float& g, float& b, int& count);
  int nearest_of(const uint16_t* list, int count, float r, float g, float b) const;
  const std::array<float, 3>& color(int index) const { return colors_[index]; }

 private:
  static constexpr int kFineBits = 2;
  static constexpr int kCoarseBits = 4;
  static constexpr int kFine = 256 >> kFineBits;
  static constexpr int kCoarse = 256 >> kCoarseBits;
  void init(size_t queries);
  // Appends to candidates_ the entries that can be nearest in the box lo..lo+side-1, taken
  // from the list at candidates_[from] (from_count long), or from all entries (kAll).
  static constexpr size_t kAll = ~static_cast<size_t>(0);
  void list_cell(const int lo[3], int side, size_t from, int from_count);
  void build_fine(int cell, int r, int g, int b);
  // Offset in candidates_ of coarse cell (cr, cg, cb)'s list, built on first use.
  size_t coarse_list(int cr, int cg, int cb);

  std::vector<std::array<float, 3>> colors_;
  std::vector<int32_t> coarse_start_;
  std::vector<int32_t> fine_start_;   // offset into candidates_, -1 until built
  std::vector<uint16_t> candidates_;  // per cell: count, then that many palette indices
  std::vector<uint16_t> all_;         // 0, 1, ...: every entry, when scanning all of them
  std::vector<float> scratch_;
  static constexpr int kCacheBits = 13;
  std::vector<uint32_t> cache_keys_;  // direct-mapped: colour -> nearest entry
  std::vector<uint16_t> cache_values_;
};

// The per-pixel lookups, here so that the callers (palette.cpp, frame_mapper.cpp) inline them.
inline int NearestColor::find_cached(int r, int g, int b) {
  uint32_t key = static_cast<uint32_t>(r) << 16 | static_cast<uint32_t>(g) << 8 | static_cast<uint32_t>(b);
  uint32_t slot = (key * 2654435761u) >> (32 - kCacheBits);
  if (cache_keys_[slot] != key) {
    cache_keys_[slot] = key;
    cache_values_[slot] =
        static_cast<uint16_t>(find(static_cast<float>(r), static_cast<float>(g), static_cast<float>(b)));
  }
  return cache_values_[slot];
}

inline const uint16_t* NearestColor::near(float& r, float& g, float& b, int& count) {
  r = std::clamp(r, 0.f, 255.f);
  g = std::clamp(g, 0.f, 255.f);
  b = std::clamp(b, 0.f, 255.f);
  if (!all_.empty()) {
    count = static_cast<int>(all_.size());
    return all_.data();
  }
  int ri = static_cast<int>(r) >> kFineBits;
  int gi = static_cast<int>(g) >> kFineBits;
  int bi = static_cast<int>(b) >> kFineBits;
  int cell = (ri * kFine + gi) * kFine + bi;
  if (fine_start_[cell] < 0) build_fine(cell, ri, gi, bi);
  const uint16_t* list = &candidates_[fine_start_[cell]];
  count = list[0];
  return list + 1;
}

inline int NearestColor::nearest_of(const uint16_t* list, int count, float r, float g, float b) const {
  int best = list[0];
  float best_d = std::numeric_limits<float>::max();
  for (int j = 0; j < count; ++j) {
    const std::array<float, 3>& c = colors_[list[j]];
    float dr = r - c[0], dg = g - c[1], db = b - c[2];
    float d = dr * dr + dg * dg + db * db;
    if (d < best_d) {
      best_d = d;
      best = list[j];
    }
  }
  return best;
}

// One frame ready for the GIF writer: the LZW-compressed indices of the rectangle that
// changed.
struct MappedFrame {
  std::vector<Rgb> palette;  // the frame's local colour table, 1 << code_size entries
  int code_size = 8;         // bits per index (2..8), the LZW minimum code size
  int transparent = -1;      // palette index meaning "keep what is shown", or -1
  int left = 0, top = 0, width = 0, height = 0;
  std::vector<uint8_t> lzw;  // the image's LZW code stream
};

// Maps frames to palette indices with dithering, remembering what is on screen so unchanged
// pixels can stay transparent, and compresses them as it goes: pixels are visited in GIF's
// raster order so each choice can see the LZW dictionary (see lzw.h). Frames must come in
// display order.
//
// A frame is mapped in horizontal bands (bands()), each with its own LZW stream and error
// diffusion, and a band of one frame depends only on the same band of the frame before. So
// the work splits into stages that can run on different threads: start() (in frame order),
// map_band(b) (for each band in frame order; different bands at once), finish() (once all
// bands of the frame are mapped). A pipeline can then map band 0 of frame i+1 while band 1 of
// frame i is still being mapped (the GIF sink's pipeline does).
class FrameMapper {
 public:
  FrameMapper(int width, int height, Dither dither);
  ~FrameMapper();
  // One frame between start() and finish(); holds the frame and its palette.
  struct Work;
  int bands() const { return bands_; }
  std::shared_ptr<Work> start(Frame frame, Palette palette);
  void map_band(Work& work, int band);
  MappedFrame finish(Work& work);

 private:
  int width_;
  int height_;
  Dither dither_;
  int bands_;
  long frame_index_ = 0;
  std::vector<uint8_t> shown_;     // RGB of what a viewer sees now
  std::vector<uint8_t> previous_;  // the previous source frame, to spot held frames
};

}  // namespace sdinterp::sinks
