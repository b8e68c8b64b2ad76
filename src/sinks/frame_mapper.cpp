// The mapping half of GIF quantization (sinks/quantize.h, FrameMapper): dithering, keeping
// what is on screen, and LZW-aware index choice, band by band.
#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "sinks/lzw.h"
#include "sinks/quantize.h"

namespace sdinterp::sinks {
namespace {
using Vec3 = std::array<float, 3>;
}  // namespace

namespace {

// Mapping constants, chosen on bench/gif_quality.py's sequences (README, "The GIF encoder").
constexpr float kDamping = 0.875f;  // share of the error diffused
constexpr float kDeadZone = 1.f;    // error (levels) not diffused
constexpr float kMaxError = 48.f;   // clamp of a diffused error (levels)
constexpr float kLossyDiffusion = 100.f;
constexpr float kLossyOrdered = 100.f;
constexpr float kOrderedMaxAmplitude = 16.f;

// 8x8 Bayer matrix, values 0..63.
constexpr uint8_t kBayer[8][8] = {{0, 32, 8, 40, 2, 34, 10, 42},  {48, 16, 56, 24, 50, 18, 58, 26},
                                  {12, 44, 4, 36, 14, 46, 6, 38}, {60, 28, 52, 20, 62, 30, 54, 22},
                                  {3, 35, 11, 43, 1, 33, 9, 41},  {51, 19, 59, 27, 49, 17, 57, 25},
                                  {15, 47, 7, 39, 13, 45, 5, 37}, {63, 31, 55, 23, 61, 29, 53, 21}};
}  // namespace

namespace {

// What every band of one frame shares.
struct MapContext {
  const uint8_t* src;
  uint8_t* shown;
  int width;
  Dither dither;
  const std::vector<Rgb>* palette;
  int transparent;  // index meaning "keep what is shown"
  bool can_keep;
  float lossy;
  float ordered_amp;
  uint8_t* indices;
};

// One band's result: its LZW stream and the box of pixels it changed.
struct Band {
  int y0 = 0, y1 = 0;
  int min_x = 0, min_y = 0, max_x = -1, max_y = -1;
};

float dist(const float* t, const uint8_t* c) {
  float d0 = t[0] - c[0], d1 = t[1] - c[1], d2 = t[2] - c[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}
float dist(const float* t, const Vec3& c) {
  float d0 = t[0] - c[0], d1 = t[1] - c[1], d2 = t[2] - c[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}

// Maps rows y0..y1-1 in raster order, choosing each pixel's index with the LZW state in view.
void map_rows(const MapContext& m, Band& band, LzwEncoder& lzw) {
  NearestColor nearest(*m.palette, static_cast<size_t>(band.y1 - band.y0) * m.width);
  const std::vector<Rgb>& palette = *m.palette;
  bool diffuse = m.dither == Dither::kDiffusion;
  size_t row_floats = static_cast<size_t>(m.width + 2) * 3;
  std::vector<float> errors(diffuse ? 2 * row_floats : 0, 0.f);
  float* err_cur = errors.data();
  float* err_next = diffuse ? errors.data() + row_floats : nullptr;
  // The changed box is kept in locals and stored once: bands sit side by side in memory, and
  // per-pixel stores to them would bounce one cache line between the cores.
  int min_x = m.width, min_y = band.y1, max_x = -1, max_y = -1;
  for (int y = band.y0; y < band.y1; ++y) {
    int previous = -1;
    // The error pushed right by the previous pixel, kept in registers: it is the one input
    // each pixel waits for, and a round trip through memory would lengthen that wait.
    float carry[3] = {0.f, 0.f, 0.f};
    for (int x = 0; x < m.width; ++x) {
      size_t i = static_cast<size_t>(y) * m.width + x;
      const uint8_t* s = m.src + 3 * i;
      uint8_t* shown = m.shown + 3 * i;
      float t[3] = {static_cast<float>(s[0]), static_cast<float>(s[1]), static_cast<float>(s[2])};
      if (diffuse) {
        const float* e = &err_cur[3 * (x + 1)];
        for (int a = 0; a < 3; ++a) t[a] += e[a] + carry[a];
      } else if (m.dither == Dither::kOrdered) {
        float d = (static_cast<float>(kBayer[y & 7][x & 7]) + 0.5f) / 64.f - 0.5f;
        for (int a = 0; a < 3; ++a) t[a] += m.ordered_amp * d;
      }
      for (float& v : t) v = std::clamp(v, 0.f, 255.f);
      int k;
      int ti[3] = {static_cast<int>(t[0]), static_cast<int>(t[1]), static_cast<int>(t[2])};
      const bool integral =
          static_cast<float>(ti[0]) == t[0] && static_cast<float>(ti[1]) == t[1] && static_cast<float>(ti[2]) == t[2];
      if (integral) {
        // Undithered (or fully diffused) pixels repeat colours: those lookups are cached.
        k = nearest.find_cached(ti[0], ti[1], ti[2]);
      } else {
        int count = 0;
        const uint16_t* list = nearest.near(t[0], t[1], t[2], count);
        k = nearest.nearest_of(list, count, t[0], t[1], t[2]);
      }
      float e_k = dist(t, nearest.color(k));
      int choice = k;
      float e_keep = m.can_keep ? dist(t, shown) : 0.f;
      // What is on screen is kept (transparent) when it is closer than the best new colour,
      // or as close and the pixel before was kept too: runs of "keep" compress to almost
      // nothing, single kept pixels among changed ones only break the LZW strings.
      if (m.can_keep && (e_keep < e_k || (e_keep == e_k && previous == m.transparent))) {
        choice = m.transparent;
      }
      if (!lzw.extends(choice)) {
        // A nearly-as-good colour that continues the current LZW string costs no new code.
        // Without dithering only exact ties are traded (an equally distant colour, or the
        // shown one): the error stays the same.
        float limit = e_k + m.lossy;
        float best = std::numeric_limits<float>::max();
        lzw.for_each_extension([&](int symbol) {
          float e = symbol == m.transparent ? e_keep : dist(t, nearest.color(symbol));
          if (e <= limit && e < best) {
            best = e;
            choice = symbol;
          }
        });
      }
      lzw.put(choice);
      previous = choice;
      m.indices[i] = static_cast<uint8_t>(choice);
      if (choice != m.transparent) {
        const Rgb& c = palette[choice];
        shown[0] = c[0];
        shown[1] = c[1];
        shown[2] = c[2];
        min_x = std::min(min_x, x);
        max_x = std::max(max_x, x);
        min_y = std::min(min_y, y);
        max_y = std::max(max_y, y);
      }
      if (diffuse) {
        // Floyd-Steinberg weights. Errors under a level are dropped (where the palette fits,
        // as in a smooth gradient, there is nothing to dither: flat stays flat and compresses),
        // the rest is damped and clamped so it cannot run away into streaks where the
        // palette has no colour near the target.
        if (integral && std::abs(ti[0] - shown[0]) <= 1 && std::abs(ti[1] - shown[1]) <= 1 &&
            std::abs(ti[2] - shown[2]) <= 1) {
          // The common case where the palette fits: whole-level errors of at most one level
          // are all inside the dead zone, so nothing moves on (the general code below gives
          // exactly zero for them too).
          static_assert(kDeadZone >= 1.f, "the shortcut assumes one-level errors are dropped");
          carry[0] = carry[1] = carry[2] = 0.f;
          continue;
        }
        float e[3];
        for (int a = 0; a < 3; ++a) {
          float d = t[a] - shown[a];
          d = d > 0 ? std::max(0.f, d - kDeadZone) : std::min(0.f, d + kDeadZone);
          e[a] = std::clamp(d * kDamping, -kMaxError, kMaxError);
          carry[a] = e[a] * (7.f / 16.f);
        }
        // Most errors fall in the dead zone where the palette fits; adding zeros is skipped.
        if (e[0] != 0.f || e[1] != 0.f || e[2] != 0.f) {
          for (int a = 0; a < 3; ++a) {
            err_next[3 * x + a] += e[a] * (3.f / 16.f);
            err_next[3 * (x + 1) + a] += e[a] * (5.f / 16.f);
            err_next[3 * (x + 2) + a] += e[a] * (1.f / 16.f);
          }
        }
      }
    }
    if (diffuse) {
      std::swap(err_cur, err_next);
      std::fill(err_next, err_next + row_floats, 0.f);
    }
  }
  band.min_x = min_x;
  band.min_y = min_y;
  band.max_x = max_x;
  band.max_y = max_y;
}

// Bands mapped in parallel: one per core, each at least 64 rows (fewer, larger bands keep
// the LZW dictionary warm and the diffusion seams few).
int band_count(int height) {
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(std::min(cores, height / 64), 1, 4);
}

}  // namespace

FrameMapper::FrameMapper(int width, int height, Dither dither)
    : width_(width),
      height_(height),
      dither_(dither),
      bands_(band_count(height)),
      shown_(static_cast<size_t>(width) * height * 3, 0) {}

struct FrameMapper::Work {
  Frame frame;
  Palette palette;
  bool held = false;  // the same pixels as the frame before
  MapContext context;
  int code_size = 2;
  std::vector<uint8_t> indices;
  std::vector<Band> bands;
  std::vector<LzwEncoder> streams;
};

FrameMapper::~FrameMapper() = default;

std::shared_ptr<FrameMapper::Work> FrameMapper::start(Frame frame, Palette palette) {
  auto work = std::make_shared<Work>();
  work->frame = std::move(frame);
  work->palette = std::move(palette);
  bool can_keep = frame_index_ > 0;
  ++frame_index_;
  if (can_keep && work->frame.rgb == previous_) {
    work->held = true;
    return work;
  }
  previous_ = work->frame.rgb;

  const Palette& table = work->palette;
  MapContext& m = work->context;
  m.src = work->frame.rgb.data();
  m.shown = shown_.data();
  m.width = width_;
  m.dither = dither_;
  m.palette = &table.colors;
  m.transparent = static_cast<int>(table.colors.size());
  m.can_keep = can_keep;
  // How far (squared RGB distance) a colour may be from the best one and still be taken
  // because it continues the current LZW string. Error diffusion corrects the extra error in
  // the next pixels, so it can afford more; without dithering only exact ties are traded.
  m.lossy = dither_ == Dither::kDiffusion ? kLossyDiffusion : dither_ == Dither::kOrdered ? kLossyOrdered : 0.f;
  // A frame the palette fits almost exactly (a smooth gradient) shows every extra error; a
  // photo, whose colours sit several levels from the nearest entry anyway, hides it.
  m.lossy *= std::clamp((table.rms_error - 1.f) / 2.f, 0.f, 1.f);
  // The threshold pattern spans about the palette's spacing here: wide enough to mix the
  // neighbouring entries, no wider (a palette that fits exactly needs no dither at all).
  m.ordered_amp = std::min(kOrderedMaxAmplitude, 2.5f * table.rms_error);
  work->indices.resize(static_cast<size_t>(width_) * height_);
  m.indices = work->indices.data();

  int entries = m.transparent + (can_keep ? 1 : 0);
  while ((1 << work->code_size) < entries) ++work->code_size;

  work->bands.resize(bands_);
  for (int b = 0; b < bands_; ++b) {
    work->bands[b].y0 = static_cast<int>(static_cast<int64_t>(height_) * b / bands_);
    work->bands[b].y1 = static_cast<int>(static_cast<int64_t>(height_) * (b + 1) / bands_);
    work->streams.emplace_back(work->code_size, b > 0);
  }
  return work;
}

void FrameMapper::map_band(Work& work, int band) {
  if (work.held) return;
  map_rows(work.context, work.bands[band], work.streams[band]);
}

MappedFrame FrameMapper::finish(Work& work) {
  MappedFrame out;
  if (work.held) {
    // A held frame: nothing changes on screen, so it is one transparent pixel (which keeps
    // the frame and its delay). Dithering it again would only stir the noise.
    out.palette.assign(4, Rgb{0, 0, 0});
    out.code_size = 2;
    out.transparent = 0;
    out.width = out.height = 1;
    LzwEncoder lzw(2);
    lzw.put(0);
    out.lzw = lzw.finish();
    return out;
  }
  int n = static_cast<int>(work.bands.size());
  int min_x = width_, min_y = height_, max_x = -1, max_y = -1;
  for (const Band& band : work.bands) {
    min_x = std::min(min_x, band.min_x);
    min_y = std::min(min_y, band.min_y);
    max_x = std::max(max_x, band.max_x);
    max_y = std::max(max_y, band.max_y);
  }
  if (max_x < 0) {
    // Nothing changed: one transparent pixel keeps the frame (and its delay).
    min_x = max_x = min_y = max_y = 0;
  }
  out.left = min_x;
  out.top = min_y;
  out.width = max_x - min_x + 1;
  out.height = max_y - min_y + 1;
  if (static_cast<int64_t>(out.width) * out.height * 4 >= static_cast<int64_t>(width_) * height_ * 3) {
    // Cropping would save little: keep the whole frame and the streams built while mapping.
    out.left = out.top = 0;
    out.width = width_;
    out.height = height_;
    for (int b = 0; b < n; ++b) work.streams[b].end(b + 1 < n);
    for (int b = 1; b < n; ++b) work.streams[0].append(work.streams[b]);
    out.lzw = work.streams[0].bytes();
  } else {
    LzwEncoder cropped(work.code_size);
    for (int y = 0; y < out.height; ++y) {
      const uint8_t* row = &work.indices[static_cast<size_t>(y + min_y) * width_ + min_x];
      for (int x = 0; x < out.width; ++x) cropped.put(row[x]);
    }
    out.lzw = cropped.finish();
  }
  out.code_size = work.code_size;
  if (work.context.can_keep) out.transparent = work.context.transparent;
  out.palette = work.palette.colors;
  out.palette.resize(static_cast<size_t>(1) << work.code_size, Rgb{0, 0, 0});
  return out;
}

}  // namespace sdinterp::sinks
