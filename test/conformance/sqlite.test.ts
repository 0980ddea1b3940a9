/** The source conformance suite for the sqlite kind (see test/conformance/README.md). */
import { DRIVERS } from './kinds.js';
import { conformanceSuite } from './suite.js';

conformanceSuite(DRIVERS.sqlite);
