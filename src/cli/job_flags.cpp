#include "cli/job_flags.h"

#include <algorithm>

#include "sdinterp/errors.h"
#include "sdinterp/job.h"
#include "sdinterp/names.h"
#include "sdinterp/number_text.h"

namespace sdinterp::cli {

JobFlags::JobFlags(CLI::App* sub, JobFlagUse use, const std::vector<std::string>& keys) {
  // Every flag is taken as text and turned into the job value it stands for by given(): flags and
  // job files then go through one reader (apply_job), with one set of messages.
  const nlohmann::json defaults = job_to_json(RunConfig{});
  for (const JobKey& k : job_key_table()) {
    if (!keys.empty() && std::find(keys.begin(), keys.end(), k.key) == keys.end()) continue;
    const std::string names = k.flag.empty() ? "--" + k.key : k.flag;
    const nlohmann::json& fallback =
        use != JobFlagUse::kOverrides && defaults.contains(k.key) ? defaults.at(k.key) : nlohmann::json();
    CLI::Option* option = nullptr;
    switch (k.kind) {
      case FlagKind::kText:
        option = sub->add_option(names, texts_[k.key], k.help);
        if (fallback.is_string() && !fallback.get<std::string>().empty())
          option->default_str(fallback.get<std::string>());
        break;
      case FlagKind::kTexts:
        option = sub->add_option(names, lists_[k.key], k.help);
        break;
      case FlagKind::kKeyframes:
        option = sub->add_option(names, lists_[k.key], k.help)->type_name("KEYFRAME");
        break;
      case FlagKind::kSwitch:
        option = sub->add_flag(names, switches_[k.key], k.help);
        break;
      case FlagKind::kNumber: {
        // Keys with a row in numeric_options() show their range; the seed takes any 64-bit number.
        const auto& rows = numeric_options();
        const bool ranged =
            std::any_of(rows.begin(), rows.end(), [&](const NumericOption& row) { return row.key == k.key; });
        const bool integer = !ranged || numeric_option(k.key).integer;
        option =
            sub->add_option(names, texts_[k.key], ranged ? k.help + ": " + range_text(numeric_option(k.key)) : k.help)
                ->type_name(integer ? "INT" : "NUMBER");
        if (fallback.is_number()) option->default_str(number_text(fallback.get<double>()));
        break;
      }
    }
    options_[k.key] = option;
  }
  // The prompts a mode needs (none for a timeline, whose keyframes carry them) are checked with
  // the rest of the job (RunConfig::problems).
  if (use == JobFlagUse::kWholeJob) options_.at("bundle")->required();
  if (use == JobFlagUse::kOverrides) {
    sub->footer(
        "A flag given replaces the job's value (in a batch, every line's); a value neither gives is the default "
        "that sdinterp generate --help shows.");
  }
}

nlohmann::json JobFlags::given() const {
  nlohmann::json j = nlohmann::json::object();
  for (const JobKey& k : job_key_table()) {
    const auto registered = options_.find(k.key);
    if (registered == options_.end() || registered->second->count() == 0) continue;
    switch (k.kind) {
      case FlagKind::kText:
        j[k.key] = text_json(texts_.at(k.key));
        break;
      case FlagKind::kNumber:
        j[k.key] = flag_value(k.key, texts_.at(k.key));
        break;
      case FlagKind::kSwitch:
        j[k.key] = switches_.at(k.key);
        break;
      case FlagKind::kTexts:
      case FlagKind::kKeyframes:
        j[k.key] = nlohmann::json::array();
        for (const std::string& text : lists_.at(k.key)) {
          j[k.key].push_back(k.kind == FlagKind::kTexts ? text_json(text) : keyframe_flag_value(text));
        }
        break;
    }
  }
  return j;
}

namespace {
const NameTable<Progress> kProgress("--progress", {{Progress::kAuto, "auto"},
                                                   {Progress::kBar, "bar"},
                                                   {Progress::kJson, "json"},
                                                   {Progress::kNone, "none"}});
}  // namespace

void check_ui(const UiOptions& ui) {
  if (!ui.progress_given.empty()) kProgress.parse(ui.progress_given);  // throws the table's line
  // Read when the model fails; a value that is no switch ("yes", "false") is refused before any work.
  (void)env_switch(kVerboseVariable, false);
}

void add_ui_flags(CLI::App* sub, UiOptions& ui) {
  sub->add_flag("-q,--quiet", ui.quiet, "Print only the result line (and errors)");
  // Read into the mode as soon as it is parsed (a failure reported before check_ui already knows
  // whether to speak JSON); a name that is none of the modes waits for check_ui.
  sub->add_option_function<std::string>(
         "--progress",
         [&ui](const std::string& name) {
           ui.progress_given.clear();
           try {
             ui.progress = kProgress.parse(name);
           } catch (const ConfigError&) {
             ui.progress_given = name;
           }
         },
         "Progress: auto (a bar on a terminal), bar, json (one line per event), none")
      ->default_str("auto");
  sub->add_flag("--verbose", ui.verbose,
                std::string("When the model fails, print LibTorch's whole message (TorchScript traceback included) "
                            "before the error line; ") +
                    kVerboseVariable + "=1 does the same");
}

}  // namespace sdinterp::cli
