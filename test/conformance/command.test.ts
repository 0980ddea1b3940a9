/** The source conformance suite for the command kind (see test/conformance/README.md). */
import { DRIVERS } from './kinds.js';
import { conformanceSuite } from './suite.js';

conformanceSuite(DRIVERS.command);
