#include "sdinterp/batching.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace sdinterp {

int64_t frame_activation_bytes(const Manifest& m, int height, int width, bool guided, bool on_cpu) {
  const double latent_area = static_cast<double>(height / m.vae.scale_factor) * (width / m.vae.scale_factor);
  const double element_size = m.dtype == "float32" ? 4.0 : 2.0;
  // Per batch element at 64x64 latents for a 768-wide SD-1.5 UNet: 55 MB in fp16 on CUDA, 207 MB
  // in fp32 on the CPU. Activations grow with the latent area and the element size, and roughly
  // with the model's width.
  const double measured = on_cpu ? 207e6 * (element_size / 4.0) : 55e6 * (element_size / 2.0);
  const double per_element = measured * (latent_area / 4096.0) * std::max(0.05, m.unet.cross_attention_dim / 768.0);
  return static_cast<int64_t>(per_element * (guided ? 2 : 1));
}

int64_t decode_frame_bytes(const Manifest& m, int height, int width, bool on_cpu) {
  const double area = static_cast<double>(height) * width / (512.0 * 512.0);
  const double element_size = m.dtype == "float32" ? 4.0 : 2.0;
  const double measured = on_cpu ? 0.9e9 * (element_size / 4.0) : 1.23e9 * (element_size / 2.0);
  return static_cast<int64_t>(measured * area);
}

int decode_chunk_for_budget(int64_t budget_bytes, int64_t per_frame_bytes, int64_t frames, int cap) {
  int fit = batch_for_budget(budget_bytes, per_frame_bytes, frames);
  if (cap > 0) fit = std::min(fit, cap);
  return even_batch(fit, frames);
}

int batch_for_budget(int64_t budget_bytes, int64_t per_frame_bytes, int64_t total_frames) {
  const int64_t fit = per_frame_bytes > 0 ? budget_bytes / per_frame_bytes : total_frames;
  return static_cast<int>(std::max<int64_t>(1, std::min(fit, total_frames)));
}

int compiled_frames_cap(const Manifest::Compiled& compiled, bool guided) {
  return std::max(1, guided ? compiled.batch_max / 2 : compiled.batch_max);
}

int even_batch(int batch, int64_t total_frames) {
  if (batch <= 0 || total_frames <= 0) return std::max(1, batch);
  const int64_t chunks = (total_frames + batch - 1) / batch;
  return static_cast<int>((total_frames + chunks - 1) / chunks);
}

int64_t mem_available_bytes(const std::string& meminfo) {
  const std::string key = "MemAvailable:";
  const size_t at = meminfo.find(key);
  if (at == std::string::npos) return -1;
  std::istringstream line(meminfo.substr(at + key.size()));
  int64_t kib = -1;
  std::string unit;
  if (!(line >> kib >> unit) || unit != "kB" || kib < 0) return -1;
  return kib * 1024;
}

RenderOrder::RenderOrder(std::vector<int64_t> same_as, int batch)
    : same_as_(std::move(same_as)), repeated_(same_as_.size(), false), batch_(std::max(1, batch)) {
  for (size_t i = 0; i < same_as_.size(); ++i) {
    const int64_t first = same_as_[i];
    if (first < 0 || first > static_cast<int64_t>(i) || same_as_[static_cast<size_t>(first)] != first) {
      throw std::invalid_argument("RenderOrder: frame " + std::to_string(i) + " repeats " + std::to_string(first) +
                                  ", which is not an earlier rendered frame");
    }
    if (first == static_cast<int64_t>(i)) {
      rendered_.push_back(first);
    } else {
      repeated_[static_cast<size_t>(first)] = true;
    }
  }
}

std::vector<RenderOrder::Chunk> RenderOrder::chunks() const {
  std::vector<Chunk> out;
  const int64_t n = static_cast<int64_t>(rendered_.size());
  for (int64_t first = 0; first < n; first += batch_) out.push_back({first, std::min<int64_t>(batch_, n - first)});
  return out;
}

RenderOrder::Writer::Writer(const RenderOrder& order, std::function<void(const Frame&)> write)
    : order_(order), write_(std::move(write)), kept_(static_cast<size_t>(order.total())) {}

void RenderOrder::Writer::write_through(int64_t last, const Frame* current) {
  for (; next_ <= last; ++next_) {
    const int64_t source = order_.same_as_[static_cast<size_t>(next_)];
    if (source == next_ && (next_ != last || current == nullptr)) {
      throw std::logic_error("RenderOrder::Writer: rendered frame " + std::to_string(next_) + " was skipped");
    }
    write_(source == next_ ? *current : kept_.at(static_cast<size_t>(source)));
  }
}

void RenderOrder::Writer::add(int64_t index, const Frame& frame) {
  if (index < next_ || index >= order_.total() || order_.same_as_[static_cast<size_t>(index)] != index) {
    throw std::logic_error("RenderOrder::Writer: frame " + std::to_string(index) + " out of order");
  }
  if (order_.repeated_[static_cast<size_t>(index)]) kept_[static_cast<size_t>(index)] = frame;
  write_through(index, &frame);  // this frame, and the repeats before it
}

void RenderOrder::Writer::finish() { write_through(order_.total() - 1, nullptr); }

}  // namespace sdinterp
