#ifndef ORCHESTRATE_CLIBYAML_SHIM_H
#define ORCHESTRATE_CLIBYAML_SHIM_H
#include <yaml.h>
#endif
