/**
 * Every test process registers the kinds of source, as the program's entry points do
 * (src/sources/all.ts): tests read lifeboat.yaml and build jobs without going through
 * cli/main.ts.
 */
import '../src/sources/all.js';
