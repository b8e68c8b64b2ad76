// `sdinterp run JOB.json` (one job, flags override the file) and `sdinterp batch JOBS.jsonl`
// (many jobs, one model load, failures reported and skipped).
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/job_files.h"
#include "cli/interrupt.h"
#include "cli/job_flags.h"
#include "cli/events.h"
#include "cli/report.h"
#include "sdinterp/errors.h"
#include "sdinterp/job.h"

namespace sdinterp::cli {
namespace {

std::string read_job_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot read the job file");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct BatchOptions {
  std::string path;
  bool skip_existing = false;
};

}  // namespace

void add_run_command(CLI::App& app, int& status) {
  CLI::App* sub = app.add_subcommand("run", "Render one job described in a JSON file (flags given here override it)");
  auto path = std::make_shared<std::string>();
  sub->add_option("job", *path, "Job file (JSON object with the generate flags' names; run metadata works too)")->required();
  auto flags = std::make_shared<JobFlags>(sub, /*required_bundle=*/false);
  auto ui = std::make_shared<UiOptions>();
  add_ui_flags(sub, *ui);
  sub->add_flag("--strict", ui->strict,
                "Run metadata: refuse to run when the bundle's files differ from the ones it records (default: warn)");
  sub->callback([path, flags, ui, &status] {
    ui->job = job_ref(*path, 0, "", "");
    reporting_failures(*ui, [&] {
      check_ui(*ui);
      RunConfig config;
      const nlohmann::json job = parse_job_object(read_job_file(*path), *path);
      apply_job(job, config, *path);
      if (is_run_metadata(job)) {
        resolve_metadata_paths(config, *path);
        ui->expected_hashes = job["sdinterp"].value("bundle", nlohmann::json::object()).value("hashes", nlohmann::json());
      }
      apply_job(flags->given(), config, "");  // "": flags name themselves
      ui->job = job_ref(*path, 0, config.output, config.png_dir);
      run_and_report(*runtime().new_session(), config, *ui);
    });
    status = 0;
  });
}

void add_batch_command(CLI::App& app, int& status) {
  CLI::App* sub = app.add_subcommand("batch", "Render many jobs, one JSON object per line; the model is loaded once");
  auto o = std::make_shared<BatchOptions>();
  sub->add_option("jobs", o->path, "JSON Lines file: one job per line (blank lines and lines starting with # are skipped)")
      ->required();
  sub->add_flag("--skip-existing", o->skip_existing, "Skip jobs whose output and matching metadata already exist");
  auto flags = std::make_shared<JobFlags>(sub, /*required_bundle=*/false);
  auto ui = std::make_shared<UiOptions>();
  add_ui_flags(sub, *ui);
  sub->callback([o, flags, ui, &status] {
    ui->job = job_ref(o->path, 0, "", "");
    int done = 0, skipped = 0, failed = 0;
    std::unique_ptr<RuntimeSession> session;
    auto summary = [&](bool interrupted) {
      const int loads = session ? session->bundle_loads() : 0;
      if (ui->progress == "json") {
        emit_event("summary", nullptr,
                   {{"done", done}, {"skipped", skipped}, {"failed", failed}, {"model_loads", loads},
                    {"interrupted", interrupted},
                    {"exit_code", interrupted ? kExitInterrupted : failed > 0 ? kExitBatchFailures : kExitOk}});
      } else {
        std::cout << "batch: " << done << " done, " << skipped << " skipped, " << failed << " failed, model loaded "
                  << loads << " time(s)" << (interrupted ? ", interrupted" : "") << std::endl;
      }
    };
    std::istringstream lines;
    nlohmann::json overrides;
    reporting_failures(*ui, [&] {
      check_ui(*ui);
      lines.str(read_job_file(o->path));
      overrides = flags->given();
    });
    {
      int line_number = 0;
      std::string line;
      while (std::getline(lines, line)) {
        ++line_number;
        if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t\r")] == '#') continue;
        const std::string source = o->path + ":" + std::to_string(line_number);
        UiOptions job_ui = *ui;
        job_ui.job = job_ref(o->path, line_number, "", "");
        try {
          nlohmann::json job = parse_job_object(line, o->path, line_number);
          RunConfig config;
          apply_job(job, config, source);
          apply_job(overrides, config, "");  // "": flags name themselves
          job_ui.job = job_ref(o->path, line_number, config.output, config.png_dir);
          if (config.output.empty() && config.png_dir.empty()) {
            throw ConfigError(source + ": the job names no output (\"output\" or \"png-dir\")");
          }
          nlohmann::json explicit_keys = job;
          explicit_keys.update(overrides);
          if (o->skip_existing && job_already_done(config, explicit_keys)) {
            ++skipped;
            if (ui->progress == "json") {
              emit_event("skipped", job_ui.job, {{"reason", "already done"}});
            } else if (!ui->quiet) {
              std::cout << "skipped " << source << ": already done" << std::endl;
            }
            continue;
          }
          if (!session) session = runtime().new_session();
          run_and_report(*session, config, job_ui);
          ++done;
        } catch (const InterruptedError& e) {
          report_failure(job_ui, e);
          summary(true);
          throw;
        } catch (const Error& e) {
          // Whatever one job meets, the others still run: only a signal stops a batch.
          ++failed;
          report_failure(job_ui, e);
          std::cerr << "sdinterp: error: " << job_message(source, e.what()) << "\n";
        } catch (const std::exception& e) {
          ++failed;
          report_failure(job_ui, e);
          std::cerr << "sdinterp: internal error: " << job_message(source, e.what()) << "\n";
        }
        if (interrupt_requested()) {
          report_failure(job_ui, InterruptedError());
          summary(true);
          throw InterruptedError();
        }
      }
    }
    summary(false);
    status = failed > 0 ? kExitBatchFailures : kExitOk;
  });
}

}  // namespace sdinterp::cli
