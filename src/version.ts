/**
 * The program's version, in a module of its own so that `lifeboat --version` (and
 * anything else needing only the number) does not load the repository code.
 */
export const PROGRAM_VERSION = '0.1.0';
