// The factory and the helpers the implementations share.
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "schedulers/scheduler_impl.h"
#include "sdinterp/errors.h"

namespace sdinterp {
std::unique_ptr<Scheduler> make_scheduler(SchedulerKind kind, const NoiseSchedule& schedule, int steps) {
  // Beyond one inference step per training step the schedules repeat timesteps.
  if (steps < 1 || steps > schedule.num_train_timesteps) {
    throw ConfigError("steps must be between 1 and " + std::to_string(schedule.num_train_timesteps) + ", got " +
                      std::to_string(steps));
  }
  switch (kind) {
    case SchedulerKind::kLms:
      return detail::make_lms_scheduler(schedule, steps, false);
    case SchedulerKind::kLmsKarras:
      return detail::make_lms_scheduler(schedule, steps, true);
    case SchedulerKind::kEuler:
      return detail::make_euler_scheduler(schedule, steps, false);
    case SchedulerKind::kEulerKarras:
      return detail::make_euler_scheduler(schedule, steps, true);
    case SchedulerKind::kDdim:
      return detail::make_ddim_scheduler(schedule, steps);
    case SchedulerKind::kPndm:
      return detail::make_pndm_scheduler(schedule, steps);
    case SchedulerKind::kDpmpp2m:
      return detail::make_dpmpp_2m_scheduler(schedule, steps, false);
    case SchedulerKind::kDpmpp2mKarras:
      return detail::make_dpmpp_2m_scheduler(schedule, steps, true);
  }
  throw std::invalid_argument("make_scheduler: invalid SchedulerKind");
}

namespace detail {

TrainingSchedule::TrainingSchedule(const NoiseSchedule& schedule)
    : num_train_timesteps(schedule.num_train_timesteps), prediction_type(schedule.prediction_type) {
  // diffusers' tables are float32 tensors: sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 of
  // its float32 cumulative products, and numpy's float32 log of them. Computed the same way, the
  // 15-step LMS sigmas equal diffusers' bit for bit (from double-precision products they were 3 to
  // 201 float32 steps away, enough to flip 8-bit values of the frames).
  alphas_cumprod = float32_alphas_cumprod(schedule);
  const torch::Tensor cumprod = torch::tensor(alphas_cumprod, torch::kFloat64).to(torch::kFloat32);
  const torch::Tensor sigma = ((1 - cumprod) / cumprod).pow(0.5).to(torch::kFloat64).contiguous();
  sigmas.assign(sigma.data_ptr<double>(), sigma.data_ptr<double>() + sigma.numel());
  log_sigmas.reserve(sigmas.size());
  for (double s : sigmas) log_sigmas.push_back(to_float32(std::log(s)));
}

std::vector<double> float32_alphas_cumprod(const NoiseSchedule& schedule) {
  const int n = schedule.num_train_timesteps;
  schedule.betas();  // validates the schedule (ConfigError for an unknown one)
  const torch::Tensor betas =
      schedule.beta_schedule == "scaled_linear"
          ? torch::linspace(std::sqrt(schedule.beta_start), std::sqrt(schedule.beta_end), n, torch::kFloat32).pow(2)
          : torch::linspace(schedule.beta_start, schedule.beta_end, n, torch::kFloat32);
  const torch::Tensor cumprod = torch::cumprod(1.0 - betas, 0).to(torch::kFloat64).contiguous();
  return std::vector<double>(cumprod.data_ptr<double>(), cumprod.data_ptr<double>() + n);
}

double to_float32(double value) { return static_cast<double>(static_cast<float>(value)); }

torch::Tensor float32_scalar(double value) { return torch::scalar_tensor(value, torch::kFloat32); }

torch::Tensor vp_scale(const torch::Tensor& sigma) { return (sigma.pow(2) + 1).pow(0.5); }

double interp_at(const std::vector<double>& values, double t) {
  if (t <= 0.0) return values.front();
  const double last = static_cast<double>(values.size() - 1);
  if (t >= last) return values.back();
  const auto low = static_cast<size_t>(std::floor(t));
  const double fraction = t - static_cast<double>(low);
  return values[low] + (values[low + 1] - values[low]) * fraction;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps) {
  constexpr double kRho = 7.0;  // the paper's choice, as in diffusers
  const double min_inv_rho = std::pow(sigma_min, 1.0 / kRho);
  const double max_inv_rho = std::pow(sigma_max, 1.0 / kRho);
  std::vector<double> out = numpy_linspace(0.0, 1.0, steps);
  for (double& ramp : out) ramp = std::pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), kRho);
  return out;
}

double sigma_to_t(double sigma, const std::vector<double>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // The last training step at or below log_sigma, kept so that [low, low + 1] is a valid pair.
  const auto count = std::upper_bound(log_sigmas.begin(), log_sigmas.end(), log_sigma) - log_sigmas.begin();
  const auto low = static_cast<size_t>(std::clamp<std::ptrdiff_t>(count - 1, 0, std::ptrdiff_t(log_sigmas.size()) - 2));
  const double w = std::clamp((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0.0, 1.0);
  return (1.0 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
}

std::vector<int64_t> leading_timesteps(int num_train_timesteps, int steps, int steps_offset) {
  const int ratio = num_train_timesteps / steps;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(steps));
  for (int k = steps - 1; k >= 0; --k) out.push_back(int64_t{k} * ratio + steps_offset);
  return out;
}

void SchedulerBase::check_index(size_t i) const {
  if (i >= timesteps_.size()) {
    throw std::out_of_range("scheduler: call " + std::to_string(i) + " of a run with " +
                            std::to_string(timesteps_.size()) + " model calls");
  }
}

void SchedulerBase::expect_call(size_t i) const {
  check_index(i);
  if (i != next_call_) {
    throw std::logic_error("scheduler: step(" + std::to_string(i) + ") called when step(" + std::to_string(next_call_) +
                           ") was due; use a fresh scheduler for each run");
  }
}

void SchedulerBase::start_at(size_t first) {
  check_index(first);
  if (next_call_ != first_call_) throw std::logic_error("scheduler: start_at after a step; use a fresh scheduler");
  first_call_ = next_call_ = first;
}

torch::Tensor AlphaScheduler::add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const {
  check_index(i);
  const torch::Tensor alpha_prod = alpha(static_cast<int64_t>(timesteps_[i]));
  return alpha_prod.pow(0.5) * original + (1 - alpha_prod).pow(0.5) * noise;  // as diffusers
}

torch::Tensor AlphaScheduler::alpha(int64_t t) const {
  return float32_scalar(train_.alphas_cumprod.at(static_cast<size_t>(std::max<int64_t>(t, 0))));
}

torch::Tensor SigmaScheduler::add_noise(const torch::Tensor& original, const torch::Tensor& noise, size_t i) const {
  check_index(i);
  return original + noise * sigma(i);  // as diffusers: two roundings, not one fused multiply-add
}

SigmaScheduler::SigmaScheduler(const NoiseSchedule& schedule, int steps, bool karras)
    : prediction_type_(schedule.prediction_type) {
  const TrainingSchedule train(schedule);
  // diffusers' "linspace" spacing: float timesteps from the last training step down to 0.
  std::vector<double> times = numpy_linspace(0.0, train.num_train_timesteps - 1.0, steps);
  std::reverse(times.begin(), times.end());
  for (double t : times) {
    timesteps_.push_back(to_float32(t));
    sigmas_.push_back(interp_at(train.sigmas, timesteps_.back()));
  }
  if (karras) {
    // Karras levels span the same range; the model is called at the matching fractional timestep.
    sigmas_ = karras_sigmas(sigmas_.back(), sigmas_.front(), steps);
    for (size_t i = 0; i < sigmas_.size(); ++i) timesteps_[i] = to_float32(sigma_to_t(sigmas_[i], train.log_sigmas));
  }
  for (double& sigma : sigmas_) sigma = to_float32(sigma);
  sigmas_.push_back(0.0);
  // With "linspace" spacing diffusers starts from pure noise at the largest sigma.
  init_noise_sigma_ = *std::max_element(sigmas_.begin(), sigmas_.end());
}

torch::Tensor SigmaScheduler::sigma(size_t i) const { return float32_scalar(sigmas_.at(i)); }

torch::Tensor SigmaScheduler::scale_model_input(const torch::Tensor& sample, size_t i) const {
  check_index(i);
  return sample / vp_scale(sigma(i));
}

torch::Tensor SigmaScheduler::derivative(size_t i, const torch::Tensor& sample,
                                         const torch::Tensor& model_output) const {
  const torch::Tensor s = sigma(i);
  const torch::Tensor x0 = prediction_type_ == PredictionType::kEpsilon
                               ? sample - s * model_output
                               : model_output * (-s / vp_scale(s)) + sample / (s.pow(2) + 1);
  return (sample - x0) / s;
}

}  // namespace detail
}  // namespace sdinterp
