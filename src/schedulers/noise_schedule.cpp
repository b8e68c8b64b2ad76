#include "sdinterp/noise_schedule.h"

#include <cmath>
#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sdinterp/linspace.h"

namespace sdinterp {

std::vector<double> NoiseSchedule::betas() const {
  // Schedulers interpolate between training steps, so a schedule needs at least two.
  if (num_train_timesteps < 2) {
    throw ConfigError("noise schedule: num_train_timesteps must be at least 2, got " +
                      std::to_string(num_train_timesteps));
  }
  std::vector<double> result;
  if (beta_schedule == "scaled_linear") {
    result = torch_linspace(std::sqrt(beta_start), std::sqrt(beta_end), num_train_timesteps);
    for (double& beta : result) beta *= beta;
  } else if (beta_schedule == "linear") {
    result = torch_linspace(beta_start, beta_end, num_train_timesteps);
  } else {
    throw ConfigError("noise schedule: unknown beta_schedule \"" + beta_schedule + "\" (valid: scaled_linear, linear)");
  }
  // A beta outside (0, 1) makes alphas_cumprod zero, negative or constant: no sigma exists.
  for (double beta : result) {
    if (!(beta > 0.0 && beta < 1.0)) {
      throw ConfigError("noise schedule: betas must lie in (0, 1), got beta_start " + std::to_string(beta_start) +
                        " and beta_end " + std::to_string(beta_end));
    }
  }
  return result;
}

}  // namespace sdinterp
