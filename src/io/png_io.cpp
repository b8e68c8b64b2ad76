#include "io/png_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <system_error>
#include <vector>

#include "io/atomic_output.h"
#include "io/image_orientation.h"
#include "sdinterp/errors.h"

// stb is third-party code: its own warnings are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_NO_GIF  // frames are stills; GIF input would only read its first frame silently
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sdinterp::io {
namespace {

// A folder opens as a file that reads nothing: stb would call it an unknown image type (and a
// stream, read_input_image's before read_file, threw from inside libstdc++). Refused by name.
IoError folder_given(const std::string& path) {
  return IoError("cannot read image " + path + ": a folder, not an image");
}

void refuse_folder(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw folder_given(path);
}

bool starts_with(const std::vector<unsigned char>& data, std::initializer_list<unsigned char> magic, size_t at = 0) {
  if (data.size() < at + magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), data.begin() + static_cast<std::ptrdiff_t>(at));
}

// What a file that is no image is, by its first bytes, for the error: the animations sdinterp
// writes and its metadata are the files most often given in place of frames. "" when unknown.
std::string other_kind(const std::vector<unsigned char>& head) {
  if (starts_with(head, {'G', 'I', 'F', '8'})) return "a GIF animation";
  if (starts_with(head, {'R', 'I', 'F', 'F'}) && starts_with(head, {'W', 'E', 'B', 'P'}, 8)) return "a WebP file";
  if (starts_with(head, {'f', 't', 'y', 'p'}, 4)) return "an MP4 video";
  const auto text = std::find_if(head.begin(), head.end(), [](unsigned char c) { return !std::isspace(c); });
  if (text != head.end() && (*text == '{' || *text == '[')) return "JSON text";
  return "";
}

// stb says "can't fopen" for a missing or unreadable file, and its own terse words ("outofdata",
// "expected marker") for a broken one: the error says which, in the system's words for the first,
// and names an animation or JSON file given in place of a frame.
IoError frame_unreadable(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return IoError("cannot read image " + path + ": " + std::strerror(errno));
  std::vector<unsigned char> head(16);
  head.resize(std::fread(head.data(), 1, head.size(), file));
  std::fclose(file);
  if (const std::string kind = other_kind(head); !kind.empty()) {
    return IoError("cannot read image " + path + ": it is " + kind +
                   ", not a frame; give PNG frames (generate's --png-dir writes them)");
  }
  return IoError("cannot read image " + path + ": not a PNG, or its data is corrupt or truncated (" +
                 stbi_failure_reason() + "; give PNG frames)");
}

// Names compared as people number frames: runs of digits by their value (frame_2 before
// frame_10), the rest byte by byte; equal values keep the shorter run (frame_01 after frame_1).
bool natural_less(const std::string& a, const std::string& b) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ei = i, ej = j;
      while (ei < a.size() && digit(a[ei])) ++ei;
      while (ej < b.size() && digit(b[ej])) ++ej;
      size_t si = i, sj = j;  // leading zeros do not change the value
      while (si + 1 < ei && a[si] == '0') ++si;
      while (sj + 1 < ej && b[sj] == '0') ++sj;
      if (ei - si != ej - sj) return ei - si < ej - sj;
      if (const int c = a.compare(si, ei - si, b, sj, ej - sj); c != 0) return c < 0;
      if (ei - i != ej - j) return ei - i < ej - j;
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

std::vector<std::string> frame_files(const std::vector<std::string>& arguments) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const std::string& argument : arguments) {
    std::error_code ec;
    if (!fs::is_directory(argument, ec)) {
      out.push_back(argument);
      continue;
    }
    std::vector<std::string> names;
    for (fs::directory_iterator it(argument, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name[0] != '.' && lower_extension(name) == ".png" && !it->is_directory(ec)) names.push_back(name);
    }
    if (ec) throw IoError("cannot list the frames in folder " + argument + ": " + ec.message());
    if (names.empty()) throw IoError("folder " + argument + " holds no PNG frames (files ending in .png)");
    std::sort(names.begin(), names.end(), natural_less);
    for (const std::string& name : names) out.push_back((fs::path(argument) / name).string());
  }
  return out;
}

void read_image_size(const std::string& path, int& width, int& height) {
  refuse_folder(path);
  int channels = 0;
  if (stbi_info(path.c_str(), &width, &height, &channels) == 0) throw frame_unreadable(path);
}

Frame read_image_rgb(const std::string& path) {
  refuse_folder(path);
  int width = 0;
  int height = 0;
  int channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &width, &height, &channels, 3);
  if (pixels == nullptr) throw frame_unreadable(path);
  Frame frame;
  frame.width = width;
  frame.height = height;
  frame.rgb.assign(pixels, pixels + static_cast<size_t>(width) * height * 3);
  stbi_image_free(pixels);
  return frame;
}

namespace {

// A JPEG's last scan must be followed by its end marker (FF D9): stb decodes a cut file without
// complaint, filling the missing part with grey. Entropy-coded data cannot hold FF D9 (an FF in it
// is followed by 00 or a restart marker), so the marker after the last start of scan is the end.
bool jpeg_complete(const std::vector<unsigned char>& data) {
  size_t last_scan = 0;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0xDA) last_scan = i;
  }
  for (size_t i = last_scan; last_scan > 0 && i + 1 < data.size(); ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0xD9) return true;
  }
  return false;
}

}  // namespace

Frame read_input_image(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::is_a_directory) throw folder_given(path);
    throw IoError("cannot read image " + path + ": " + e.code().message());
  }
  const std::vector<unsigned char> data(bytes.begin(), bytes.end());
  const bool png = starts_with(data, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
  const bool jpeg = starts_with(data, {0xFF, 0xD8, 0xFF});
  if (!png && !jpeg) {
    const std::string kind = other_kind(data);
    throw IoError("cannot read image " + path + ": " + (kind.empty() ? "not a PNG or JPEG file" : "it is " + kind) +
                  " (give PNG or JPEG images)");
  }
  if (jpeg && !jpeg_complete(data)) throw IoError("cannot read image " + path + ": the JPEG file is truncated");
  int width = 0;
  int height = 0;
  int channels = 0;
  unsigned char* pixels =
      stbi_load_from_memory(data.data(), static_cast<int>(data.size()), &width, &height, &channels, 4);
  if (pixels == nullptr) {
    throw IoError("cannot read image " + path + ": " + (png ? "PNG" : "JPEG") + " data is corrupt or truncated (" +
                  stbi_failure_reason() + ")");
  }
  Frame frame;
  frame.width = width;
  frame.height = height;
  const size_t count = static_cast<size_t>(width) * height;
  frame.rgb.resize(count * 3);
  for (size_t i = 0; i < count; ++i) {
    const unsigned alpha = pixels[i * 4 + 3];
    for (size_t c = 0; c < 3; ++c) {
      frame.rgb[i * 3 + c] = static_cast<uint8_t>((pixels[i * 4 + c] * alpha + 255 * (255 - alpha) + 127) / 255);
    }
  }
  stbi_image_free(pixels);
  return oriented(frame, image_orientation(bytes));
}

void write_png(const std::string& path, const Frame& frame) {
  // Encoded in memory and written by write_file: stb's own file writer does not check fwrite, so a
  // full disk left truncated or empty frames behind a success.
  int size = 0;
  unsigned char* png = stbi_write_png_to_mem(frame.rgb.data(), frame.width * 3, frame.width, frame.height, 3, &size);
  if (png == nullptr) throw IoError("cannot encode " + path + " as PNG (out of memory?)");
  try {
    write_file(path, png, static_cast<size_t>(size));
  } catch (...) {
    STBIW_FREE(png);
    throw;
  }
  STBIW_FREE(png);
}

}  // namespace sdinterp::io
