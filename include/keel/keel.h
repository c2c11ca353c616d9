// keel: the whole public API.
#pragma once

#include "keel/artifact.h"
#include "keel/consumer.h"
#include "keel/coordinate.h"
#include "keel/error.h"
#include "keel/event.h"
#include "keel/gate.h"
#include "keel/ids.h"
#include "keel/options.h"
#include "keel/projection.h"
#include "keel/query.h"
#include "keel/reactor.h"
#include "keel/result.h"
#include "keel/retention.h"
#include "keel/snapshot.h"
#include "keel/store.h"
#include "keel/version.h"
