// `sdinterp generate`: a run described by flags.
#include <iostream>

#include "cli/commands.h"
#include "cli/events.h"
#include "cli/job_flags.h"
#include "cli/report.h"
#include "sdinterp/job.h"

namespace sdinterp::cli {

void add_generate_command(CLI::App& app, int& status) {
  CLI::App* sub = app.add_subcommand("generate", "Render a latent-space walk to an animation and/or PNG frames");
  auto flags = std::make_shared<JobFlags>(sub, JobFlagUse::kWholeJob);
  auto ui = std::make_shared<UiOptions>();
  add_ui_flags(sub, *ui);
  sub->callback([flags, ui, &status] {
    ui->job = job_ref("command line", 0, "", "");
    reporting_failures(*ui, [&] {
      check_ui(*ui);
      RunConfig config;
      apply_job(flags->given(), config, "");  // "": flags name themselves
      ui->job = job_ref("command line", 0, config.output, config.png_dir);
      run_and_report(*runtime(&config).new_session(), config, *ui);
    });
    status = 0;
  });
}

}  // namespace sdinterp::cli
