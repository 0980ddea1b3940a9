/** The source conformance suite for the bucket kind (see test/conformance/README.md). */
import { DRIVERS } from './kinds.js';
import { conformanceSuite } from './suite.js';

conformanceSuite(DRIVERS.bucket);
