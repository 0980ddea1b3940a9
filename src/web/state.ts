/** What the dashboard knows: the API's answers of the last poll, and the page's own state. */
import type { Backup, Drill, Group, Job, Source, Status } from '../api/dto.js';

export interface State {
  token: string | null;
  sources: Source[];
  groups: Group[];
  jobs: Job[];
  backups: Backup[];
  /** The source `backups` belongs to. */
  backupsFor: string | null;
  drills: Drill[];
  status: Status | null;
  selected: string | null;
  /** Actions whose POST has not answered yet: "backup:docs". */
  pending: Set<string>;
  /** Finished jobs seen by the last poll; a change means backups or drills may have changed. */
  finishedKey: string;
  generation: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  requestSeq: number;
  renderedSeq: number;
  noticeTimer: ReturnType<typeof setTimeout> | undefined;
  noticeOrigin: 'poll' | 'action' | null;
}

export function initialState(): State {
  return {
    token: null,
    sources: [],
    groups: [],
    jobs: [],
    backups: [],
    backupsFor: null,
    drills: [],
    status: null,
    selected: null,
    pending: new Set(),
    finishedKey: '',
    generation: 0,
    timer: undefined,
    requestSeq: 0,
    renderedSeq: 0,
    noticeTimer: undefined,
    noticeOrigin: null,
  };
}

export const isFinished = (job: Job): boolean => job.status !== 'running' && job.status !== 'queued';
