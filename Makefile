# The two commands a new machine needs (see README):
#   make demo   set up, then run pullkeeper's main job on the embedded local default
#   make test   set up, then run every check and test (this is what .ci/run calls)
.PHONY: demo test setup setup-demo
demo: setup-demo
	npm run --silent demo
test: setup
	npm test
setup:
	bash scripts/setup.sh test
setup-demo:
	bash scripts/setup.sh demo
