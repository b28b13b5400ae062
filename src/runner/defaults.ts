/** Defaults of the node runner that the launcher needs too (this module imports nothing). */

/** The pod runner's state dir when neither --state-dir, the node config nor $PULLKEEPER_NODE_STATE names one. */
export const DEFAULT_STATE_ROOT = '/run/pullkeeper-node';
