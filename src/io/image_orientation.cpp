#include "io/image_orientation.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sdinterp::io {
namespace {

constexpr std::string_view kExifHeader("Exif\0\0", 6);
constexpr std::string_view kXmpHeader("http://ns.adobe.com/xap/1.0/\0", 29);
constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);
constexpr uint16_t kOrientationTag = 0x0112;

// The unsigned number of `bytes` bytes at `at` (the caller checks the bounds), in either byte order:
// JPEG and PNG lengths are big-endian, TIFF's numbers in the order its header says.
uint32_t number_at(std::string_view s, size_t at, size_t bytes, bool little_endian = false) {
  uint32_t v = 0;
  for (size_t i = 0; i < bytes; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[at + (little_endian ? bytes - 1 - i : i)]);
  return v;
}

// The Orientation entry of a TIFF structure's first IFD (EXIF's layout), if it has one; every read
// is bounds-checked, since the bytes come from any file.
std::optional<int> tiff_orientation(std::string_view tiff) {
  if (tiff.size() < 8) return std::nullopt;
  const bool little = tiff.substr(0, 2) == "II";
  if (!little && tiff.substr(0, 2) != "MM") return std::nullopt;
  auto read = [&](size_t at, size_t bytes) { return number_at(tiff, at, bytes, little); };
  if (read(2, 2) != 42) return std::nullopt;
  const size_t ifd = read(4, 4);
  if (ifd > tiff.size() || tiff.size() - ifd < 2) return std::nullopt;
  const size_t entries = read(ifd, 2);
  for (size_t i = 0; i < entries; ++i) {
    const size_t at = ifd + 2 + 12 * i;
    if (at > tiff.size() || tiff.size() - at < 12) return std::nullopt;
    if (read(at, 2) != kOrientationTag) continue;
    const uint32_t type = read(at + 2, 2), count = read(at + 4, 4);
    if (count != 1) return 1;  // several values: not an orientation PIL turns by
    switch (type) {
      case 1:  // BYTE
        return static_cast<int>(read(at + 8, 1));
      case 3:  // SHORT
        return static_cast<int>(read(at + 8, 2));
      case 4: {  // LONG
        const uint32_t value = read(at + 8, 4);
        return value <= 8 ? static_cast<int>(value) : 1;
      }
      default:
        return 1;
    }
  }
  return std::nullopt;
}

// The digit of the first `tiff:Orientation="N"` or `tiff:Orientation>N` in an XMP packet.
std::optional<int> xmp_orientation(std::string_view xmp) {
  constexpr std::string_view kName = "tiff:Orientation";
  for (size_t at = xmp.find(kName); at != std::string_view::npos; at = xmp.find(kName, at + 1)) {
    std::string_view rest = xmp.substr(at + kName.size());
    if (rest.substr(0, 2) == "=\"")
      rest.remove_prefix(2);
    else if (rest.substr(0, 1) == ">")
      rest.remove_prefix(1);
    else
      continue;
    if (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') return rest[0] - '0';
  }
  return std::nullopt;
}

struct Metadata {
  std::string_view exif;  // TIFF bytes
  std::string_view xmp;
};

Metadata jpeg_metadata(std::string_view f) {
  Metadata m;
  size_t at = 2;  // after SOI
  while (at + 1 < f.size() && static_cast<unsigned char>(f[at]) == 0xFF) {
    while (at + 1 < f.size() && static_cast<unsigned char>(f[at + 1]) == 0xFF) ++at;  // fill bytes
    if (at + 1 >= f.size()) break;
    const unsigned marker = static_cast<unsigned char>(f[at + 1]);
    if (marker == 0xD9 || marker == 0xDA) break;  // end of image, start of scan: no metadata after
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      at += 2;  // markers without a length
      continue;
    }
    if (f.size() - at < 4) break;
    const size_t length = number_at(f, at + 2, 2);
    if (length < 2 || f.size() - at - 2 < length) break;
    const std::string_view payload = f.substr(at + 4, length - 2);
    if (marker == 0xE1) {
      if (m.exif.empty() && payload.substr(0, kExifHeader.size()) == kExifHeader) {
        m.exif = payload.substr(kExifHeader.size());
      } else if (m.xmp.empty() && payload.substr(0, kXmpHeader.size()) == kXmpHeader) {
        m.xmp = payload.substr(kXmpHeader.size());
      }
    }
    at += 2 + length;
  }
  return m;
}

Metadata png_metadata(std::string_view f) {
  Metadata m;
  constexpr std::string_view kXmpKeyword("XML:com.adobe.xmp\0", 18);
  for (size_t at = kPngSignature.size(); f.size() - at >= 12;) {
    const size_t length = number_at(f, at, 4);
    const std::string_view type = f.substr(at + 4, 4);
    if (length > f.size() - at - 12) break;
    std::string_view data = f.substr(at + 8, length);
    if (type == "eXIf" && m.exif.empty()) {
      if (data.substr(0, kExifHeader.size()) == kExifHeader) data.remove_prefix(kExifHeader.size());
      m.exif = data;
    } else if (type == "iTXt" && m.xmp.empty() && data.substr(0, kXmpKeyword.size()) == kXmpKeyword) {
      // keyword\0, compression flag, method, language\0, translated keyword\0, text; compressed
      // text is not read.
      data.remove_prefix(kXmpKeyword.size());
      if (data.size() >= 2 && data[0] == 0) {
        data.remove_prefix(2);
        const size_t language_end = data.find('\0');
        const size_t translated_end =
            language_end == std::string_view::npos ? language_end : data.find('\0', language_end + 1);
        if (translated_end != std::string_view::npos) m.xmp = data.substr(translated_end + 1);
      }
    } else if (type == "IEND") {
      break;
    }
    at += 12 + length;
  }
  return m;
}

}  // namespace

int image_orientation(std::string_view file) {
  Metadata m;
  if (file.substr(0, kPngSignature.size()) == kPngSignature) {
    m = png_metadata(file);
  } else if (file.size() >= 2 && static_cast<unsigned char>(file[0]) == 0xFF &&
             static_cast<unsigned char>(file[1]) == 0xD8) {
    m = jpeg_metadata(file);
  } else {
    return 1;
  }
  // As PIL: the EXIF tag when there is one (whatever its value), else the XMP's.
  std::optional<int> orientation = tiff_orientation(m.exif);
  if (!orientation) orientation = xmp_orientation(m.xmp);
  const int value = orientation.value_or(1);
  return value >= 1 && value <= 8 ? value : 1;
}

Frame oriented(const Frame& frame, int orientation) {
  if (orientation < 2 || orientation > 8) return frame;
  const int w = frame.width, h = frame.height;
  const bool swap = orientation >= 5;
  Frame out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(frame.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the stored pixel shown at (x, y)
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4:
          sy = h - 1 - y;
          break;
        case 5:
          sx = y;
          sy = x;
          break;
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;
        default:
          break;
      }
      const size_t to = (static_cast<size_t>(y) * out.width + x) * 3;
      const size_t from = (static_cast<size_t>(sy) * w + sx) * 3;
      for (size_t c = 0; c < 3; ++c) out.rgb[to + c] = frame.rgb[from + c];
    }
  }
  return out;
}

}  // namespace sdinterp::io
