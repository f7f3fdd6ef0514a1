# Each target installs what it needs into .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test bench lint migrate clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11+): set PY=python3.x"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build these machines carry (no CUDA download).
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	@rm -f $(VENV)/.installed-* $(VENV)/.peers; touch $@

run: $(STAMP)  ## the service on SQLite at http://127.0.0.1:8000
	$(BIN)/lifeline serve

test: $(STAMP) $(BIN)/promtool  ## every test; PostgreSQL tests skip (saying why) where none answers
	$(BIN)/python -m pytest -q

# promtool, for the alert rules' unit tests: unpacked from Debian's prometheus package, not
# installed (no server starts). Where apt-get cannot fetch it, those tests skip and say why.
$(BIN)/promtool: $(STAMP)
	@tmp=$$(mktemp -d) && (cd $$tmp && apt-get download -q prometheus >/dev/null 2>&1 \
		&& dpkg -x prometheus_*.deb x && cp x/usr/bin/promtool $(CURDIR)/$@) \
		|| echo "promtool not fetched (no apt-get here?): the alert rules' unit tests skip"; \
		rm -rf $$tmp

$(VENV)/.peers: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench,peers]"
	touch $@

bench: $(VENV)/.peers  ## benchmarks: tables on stdout, JSON under bench/results/ (~80 min)
	mkdir -p bench/results
	$(BIN)/python -m bench.lifelong --json bench/results/lifelong.json
	$(BIN)/python -m bench.lifelong --data skab --shape-only --strategies lifelong,finetune,joint \
		--json bench/results/lifelong_shape_only.json
	$(BIN)/python -m bench.quality --json bench/results/quality.json
	$(BIN)/python -m bench.vouch
	$(BIN)/python -m bench.membership --json bench/results/membership.json
	$(BIN)/python -m bench.stuck --json bench/results/stuck.json
	$(BIN)/python -m bench.throughput --json bench/results/throughput.json
	$(BIN)/python -m bench.wide --json bench/results/wide.json
	$(BIN)/python -m bench.profile
	$(BIN)/python -m bench.reads

lint: $(STAMP)
	$(BIN)/ruff check app models bench tests migrations
	$(BIN)/mypy app models bench

migrate: $(STAMP)
	$(BIN)/lifeline migrate

clean:
	rm -rf $(VENV) lifeline.db lifeline.db-* bench/results
