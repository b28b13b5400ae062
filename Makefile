# The two commands a new machine needs (see README):
#   make demo   set up, then run pullkeeper's main job on the embedded local default
#   make test   set up, then run every check and test (this is what .ci/run calls)
#   make build  compile both CLIs into dist/ (what `npm pack` ships; scripts/build.mjs)
# Both run on Node 24: scripts/node24.sh provides it beside an older system Node.
NODE_BIN := $(shell bash scripts/node24.sh)
ifeq ($(NODE_BIN),)
$(error Node 24 is not available; see the message above from scripts/node24.sh)
endif
export PATH := $(NODE_BIN):$(PATH)

.PHONY: demo test build setup setup-demo
demo: setup-demo
	npm run --silent demo -- $(ARGS)
test: setup
	npm test
build:
	bash scripts/setup.sh build
	npm run --silent build
setup:
	bash scripts/setup.sh test
setup-demo:
	bash scripts/setup.sh demo
