// The training noise schedule a model was trained with (from the bundle's manifest). No torch.
#pragma once

#include <string>
#include <vector>

namespace sdinterp {

enum class PredictionType { kEpsilon, kVPrediction };

struct NoiseSchedule {
  int num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // "scaled_linear" or "linear"
  PredictionType prediction_type = PredictionType::kEpsilon;

  // betas[t] for t in [0, num_train_timesteps), in double precision.
  std::vector<double> betas() const;
};

}  // namespace sdinterp
