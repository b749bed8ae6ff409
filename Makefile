# evcharge: PGXS build.
#   make && make install             build and install into the server of $(PG_CONFIG)
#   make installcheck                pg_regress against a running server (PGHOST/PGPORT)
#   make WERROR=1                    warnings are errors (the test build does this)
# The install script evcharge--$(EXTVERSION).sql is built from sql/install/*.sql
# in the order of INSTALL_SQL.  Released install scripts are kept as they
# shipped in sql/release/ (CREATE EXTENSION evcharge VERSION '0.1.0' works),
# and sql/upgrade/ holds one upgrade script per release.

EXTENSION = evcharge
EXTVERSION = 0.3.0

MODULE_big = evcharge
OBJS = \
	src/evcharge.o \
	src/pile_id_parse.o \
	src/pile_id.o \
	src/tariff.o \
	src/anomaly_codes.o \
	src/anomaly_set.o \
	src/engine_core.o \
	src/time_zone.o \
	src/energy_split.o \
	src/pricing.o \
	src/heartbeat_trigger.o \
	src/heartbeat_check.o \
	src/gun_events.o \
	src/session_plans.o \
	src/session_machine.o \
	src/pile_record_trigger.o \
	src/spi_trigger.o \
	src/http_fetch.o \
	src/ocpp_password.o \
	src/drop_guard.o

# The extension's SQL, one file per concept, in load order.
INSTALL_SQL = \
	sql/install/evcharge.sql \
	sql/install/pile_id.sql \
	sql/install/time_zone.sql \
	sql/install/tariff.sql \
	sql/install/anomaly_set.sql \
	sql/install/price_rules.sql \
	sql/install/calendar.sql \
	sql/install/partner.sql \
	sql/install/anomaly.sql \
	sql/install/finance_policy.sql \
	sql/install/quote.sql \
	sql/install/heartbeat.sql \
	sql/install/session.sql \
	sql/install/bill.sql \
	sql/install/pipeline.sql \
	sql/install/repair.sql \
	sql/install/report.sql \
	sql/install/customer.sql \
	sql/install/ledger.sql \
	sql/install/money.sql \
	sql/install/bridge.sql \
	sql/install/partner_settlement.sql \
	sql/install/start.sql \
	sql/install/daily_report.sql \
	sql/install/reconcile.sql \
	sql/install/evidence.sql \
	sql/install/chart.sql \
	sql/install/jobs.sql \
	sql/install/drop_guard.sql

DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/release/$(EXTENSION)--*.sql) $(wildcard sql/upgrade/$(EXTENSION)--*--*.sql)

# pg_regress pairs: sql/<test>.sql and expected/<test>.out (input dir ".").
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=btree_gist --load-extension=$(EXTENSION)

# Isolation tests: specs/<test>.spec and expected/<test>.out.
ISOLATION = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
ISOLATION_OPTS = --inputdir=. --load-extension=btree_gist --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Isrc -DEVCHARGE_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifdef WERROR
PG_CFLAGS += -Werror
endif
SHLIB_LINK = -lcurl -lssl -lcrypto

EXTRA_CLEAN = results regression.diffs regression.out output_iso $(BRIDGE) $(BRIDGE_FUZZ) $(BRIDGE_FUZZ_YKC)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The OCPP bridge, evcharge-bridge (src/bridge/, docs/bridge.md): a separate
# program on libwebsockets, jansson and libpq that compiles the shared id
# grammar.  Built by `all`, installed into $(bindir) by `install`; its own
# flags, since it is no server module (warnings are always errors).
BRIDGE = src/bridge/evcharge-bridge
BRIDGE_SRCS = $(sort $(wildcard src/bridge/*.c)) src/pile_id_parse.c
BRIDGE_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc -Isrc/bridge \
	-DEVCHARGE_VERSION='"$(EXTVERSION)"' \
	-I$(shell $(PG_CONFIG) --includedir)
BRIDGE_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq -lwebsockets -ljansson -lssl -lcrypto -lcrypt -lpthread -lm
all: $(BRIDGE)
$(BRIDGE): $(BRIDGE_SRCS) $(wildcard src/bridge/*.h) src/pile_id_parse.h Makefile
	$(CC) $(BRIDGE_CFLAGS) -o $@ $(BRIDGE_SRCS) $(BRIDGE_LIBS)
install: install-bridge
install-bridge: $(BRIDGE)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(BRIDGE) '$(DESTDIR)$(bindir)/evcharge-bridge'
.PHONY: install-bridge

# The bridge's libFuzzer target (frame decoder, schemas, mapping) with
# AddressSanitizer and UndefinedBehaviorSanitizer: `make fuzz-bridge`.
BRIDGE_FUZZ = src/bridge/fuzz/fuzz_frame
BRIDGE_FUZZ_SRCS = src/bridge/fuzz/fuzz_frame.c src/bridge/frame.c src/bridge/ocpp.c src/bridge/config.c
# fuzz_ykc: the YKC frame codec and mapping (ykc_frame.c, ykc.c).
BRIDGE_FUZZ_YKC = src/bridge/fuzz/fuzz_ykc
BRIDGE_FUZZ_YKC_SRCS = src/bridge/fuzz/fuzz_ykc.c src/bridge/ykc.c src/bridge/ykc_frame.c
fuzz-bridge: $(BRIDGE_FUZZ) $(BRIDGE_FUZZ_YKC)
$(BRIDGE_FUZZ): $(BRIDGE_FUZZ_SRCS) $(wildcard src/bridge/*.h)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall -Wextra -Werror \
		-Wno-unused-parameter -Isrc -Isrc/bridge -o $@ $(BRIDGE_FUZZ_SRCS) -ljansson -lm
$(BRIDGE_FUZZ_YKC): $(BRIDGE_FUZZ_YKC_SRCS) $(wildcard src/bridge/*.h)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall -Wextra -Werror \
		-Wno-unused-parameter -Isrc -Isrc/bridge -o $@ $(BRIDGE_FUZZ_YKC_SRCS) -lm
.PHONY: fuzz-bridge

# The list of files is in this Makefile: a change to it rebuilds the script.
$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_SQL) Makefile scripts/sql_order.py $(wildcard src/*.c)
	python3 scripts/sql_order.py $(INSTALL_SQL)
	cat $(INSTALL_SQL) > $@

# The version string is compiled in; rebuild evcharge.o when it changes.
src/evcharge.o: Makefile

# PGXS tracks no header dependencies (Debian's server is built without
# --enable-depend): every object depends on every header of src/, so a
# changed struct or constant never leaves a stale object behind.
$(OBJS): $(wildcard src/*.h)

# Static analysis, as the code is held to: both must print nothing.  The
# implicit-widening check is off: core macros such as ALLOCSET_DEFAULT_SIZES
# trip it.  The bridge (src/bridge/, its fuzz target) is checked with its
# own flags: C11 (atomics), libpq's and the system's headers, no server.
PG_INCLUDEDIR_SERVER := $(shell $(PG_CONFIG) --includedir-server)
LINT_DEFS = -DEVCHARGE_VERSION='"$(EXTVERSION)"' -D_GNU_SOURCE
LINT_CHECKS = -*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-bugprone-macro-parentheses,-bugprone-branch-clone,-bugprone-assignment-in-if-condition,-bugprone-implicit-widening-of-multiplication-result
BRIDGE_LINT_SRCS = $(sort $(wildcard src/bridge/*.c)) src/bridge/fuzz/fuzz_frame.c src/bridge/fuzz/fuzz_ykc.c
BRIDGE_LINT_FLAGS = -Isrc -Isrc/bridge -I$(shell $(PG_CONFIG) --includedir) -D_GNU_SOURCE
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--std=c99 -Isrc -Isrc/bridge -I$(PG_INCLUDEDIR_SERVER) $(LINT_DEFS) \
		'-Dpg_attribute_noreturn()=__attribute__((noreturn))' \
		--suppress=missingIncludeSystem --suppress='*:$(PG_INCLUDEDIR_SERVER)/*' \
		src/*.c test/fuzz/fuzz_ids.c test/fuzz/fuzz_anomaly.c test/fuzz/fuzz_engines.c bench/trafficgen/trafficgen.c \
		bench/ocppload/ocppload.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--std=c11 $(BRIDGE_LINT_FLAGS) --suppress=missingIncludeSystem $(BRIDGE_LINT_SRCS)
	clang-tidy --quiet --warnings-as-errors='*' --checks='$(LINT_CHECKS)' \
		src/*.c -- -Isrc -I$(PG_INCLUDEDIR_SERVER) -I$(shell $(PG_CONFIG) --includedir)/internal $(LINT_DEFS)
	clang-tidy --quiet --warnings-as-errors='*' --checks='$(LINT_CHECKS)' \
		$(BRIDGE_LINT_SRCS) -- -std=gnu11 $(BRIDGE_LINT_FLAGS)

.PHONY: lint
