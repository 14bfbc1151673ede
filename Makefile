# pushgate build and test entry points. `make run` starts the gateway on
# :9091; `make test` runs every test (unit, race, end-to-end, short fuzzing,
# the Helm chart's, the Debian package's); `make deb` builds the Debian
# package into dist/.

GO        ?= go
# bash, for pipefail: a test run piped into tee keeps go test's status.
SHELL     := /bin/bash
BINARY    ?= pushgate
PKG       := github.com/prometheus/common/version
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILDUSER ?= $(shell whoami 2>/dev/null)@$(shell hostname 2>/dev/null)
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
LDFLAGS   := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) \
             -X $(PKG).Branch=$(BRANCH) -X $(PKG).BuildUser=$(BUILDUSER) -X $(PKG).BuildDate=$(BUILDDATE)

# Modules of their own, so that the root module does not carry their
# dependency trees (Helm and Kubernetes for the chart's tests, Prometheus
# for the dashboard's): `go test ./...` does not enter them.
NESTED_MODULES := charts contrib/grafana

# Fuzz targets as package:Target; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := $(shell grep -rl --include='*_test.go' '^func Fuzz' internal | \
	xargs -r grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed -E 's#^(.*)/[^/]+_test.go:func (Fuzz[A-Za-z0-9_]*)#./\1:\2#' | sort -u)
# A count, not a duration: a duration budget can fail with a spurious
# "context deadline exceeded" (Go's fuzz coordinator, golang/go#75804,
# fixed in Go 1.27). `make fuzz FUZZTIME=1m` for longer runs.
FUZZTIME ?= 20000x

.PHONY: all build run test unit e2e fuzz bench soak lint fmt clean deb

all: lint build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/pushgate

run: build
	./$(BINARY) $(ARGS)

test: lint unit fuzz

# The log of the last `make unit`; after a failure .ci/failures repeats its
# failures at the end, where CI's tail shows them.
TESTLOG ?= $(or $(TMPDIR),/tmp)/pushgate-unit.log

unit:
	@set -o pipefail; $(GO) test -race -count=1 -timeout 15m ./... 2>&1 | tee $(TESTLOG) || { .ci/failures $(TESTLOG); exit 1; }
	@set -e; for m in $(NESTED_MODULES); do echo "test $$m"; (cd $$m && $(GO) test -count=1 -timeout 10m ./...); done

e2e:
	$(GO) test -count=1 -timeout 10m ./e2e/...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...

# Minutes of mixed load with bad requests mixed in; not part of `make test`.
SOAK_ARGS ?= -duration 5m
soak: build
	$(GO) run ./tools/soak -bin ./$(BINARY) $(SOAK_ARGS)

# staticcheck runs from the module proxy at a pinned version (GOFLAGS
# cleared: the repo's flags are not the tool's).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The Debian package, dist/pushgate_<version>_<arch>.deb (packaging/nfpm.yaml;
# packaging/deb_test.go installs it). nfpm runs from the module proxy at a
# pinned version, like staticcheck, so the module does not depend on it;
# it is built for this machine even when GOARCH names another, the one the
# package is for (GOARCH=arm64 make deb). DEB_VERSION is VERSION made a
# Debian version; DIST=/elsewhere and DEB_VERSION=... may be set.
NFPM           ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DIST           ?= dist
DEB_VERSION    ?= $(shell packaging/deb-version.sh '$(VERSION)' "$$(git rev-list --count HEAD 2>/dev/null)")
# Go's name for the architecture, which nfpm turns into Debian's (386 ->
# i386, arm7 -> armhf, arm5 -> armel, ...); 32-bit arm needs its GOARM
# level for that, or the package would say "arm", which dpkg does not know.
DEB_ARCH       ?= $(shell a=$$($(GO) env GOARCH); [ "$$a" = arm ] && a=arm$$($(GO) env GOARM | cut -c1); echo $$a)
DEB_MAINTAINER ?= pushgate developers <packaging@pushgate.invalid>

# One unit for both installs: contrib/pushgate.service names
# /usr/local/bin/pushgate, where a manual install puts the binary (dpkg never
# writes there, so the two cannot overwrite each other); the package ships it
# with /usr/bin/pushgate and without the manual steps in its header, and
# packaging/deb_test.go checks that nothing else differs.
deb: build
	@test -n '$(DEB_VERSION)' || { echo 'deb: no Debian version (see packaging/deb-version.sh)'; exit 1; }
	@mkdir -p $(DIST)/.deb
	{ echo '# pushgate.service of the Debian package; flags go in /etc/default/pushgate.'; \
	  sed -e '1,/^\[Unit\]/{/^#/d;}' -e 's#^ExecStart=/usr/local/bin/#ExecStart=/usr/bin/#' contrib/pushgate.service; \
	} >$(DIST)/.deb/pushgate.service
	@grep -q '^ExecStart=/usr/bin/pushgate ' $(DIST)/.deb/pushgate.service || \
		{ echo 'deb: ExecStart of contrib/pushgate.service is not /usr/local/bin/pushgate'; exit 1; }
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' DEB_MAINTAINER='$(DEB_MAINTAINER)' \
	DEB_BINARY='$(BINARY)' DEB_UNIT='$(DIST)/.deb/pushgate.service' \
		GOFLAGS= GOOS= GOARCH= GOARM= $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/
	rm -r $(DIST)/.deb

lint:
	$(GO) vet ./...
	@set -e; for m in $(NESTED_MODULES); do echo "lint $$m"; (cd $$m && $(GO) vet ./... && GOFLAGS= $(GO) run $(STATICCHECK) ./...); done
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	GOFLAGS= $(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -f $(BINARY)
	rm -rf $(DIST)
