/**
 * Where an Azure repository is and how to log in: `azure:CONTAINER/prefix` and the
 * credentials in the environment (a connection string, or account and key).
 */
import { LifeboatError } from '../../errors.js';

export interface AzureLocation {
  container: string;
  /** Without leading or trailing slash; '' for the container's root. */
  prefix: string;
}

export type AzureCredentials =
  | { connectionString: string }
  | { account: string; key: string; endpoint: string };

const LOCATION_HINT = 'use azure:CONTAINER or azure:CONTAINER/prefix (container names: 3-63 of a-z, 0-9 and -)';

/** Reads `CONTAINER/optional/prefix` (the part after `azure:`). */
export function parseAzureLocation(rest: string, location: string): AzureLocation {
  const [container = '', ...parts] = rest.split('/');
  // Azure's rule: 3-63 characters, lowercase letters, digits and single hyphens,
  // starting and ending with a letter or digit.
  if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(container)) {
    throw new LifeboatError('USAGE', `cannot read Azure location ${location}: "${container}" is not a container name`, {
      hint: LOCATION_HINT,
    });
  }
  const prefix = parts.filter(Boolean);
  if (prefix.some((p) => p === '.' || p === '..')) {
    throw new LifeboatError('USAGE', `cannot read Azure location ${location}: "." and ".." are not allowed in the prefix`, {
      hint: LOCATION_HINT,
    });
  }
  return { container, prefix: prefix.join('/') };
}

/** The credentials in `env`; USAGE naming the variables when there are none. */
export function azureCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): AzureCredentials {
  const connectionString = env.AZURE_STORAGE_CONNECTION_STRING;
  if (connectionString) return { connectionString };
  const account = env.AZURE_STORAGE_ACCOUNT;
  const key = env.AZURE_STORAGE_KEY;
  if (!account || !key) {
    const missing = !account && !key ? 'no Azure credentials' : `${account ? 'AZURE_STORAGE_KEY' : 'AZURE_STORAGE_ACCOUNT'} is not set`;
    throw new LifeboatError('USAGE', `${missing}: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY`, {
      hint: 'the connection string and the account key are under "Access keys" in the storage account (or `az storage account keys list`); AZURE_STORAGE_ENDPOINT overrides https://ACCOUNT.blob.core.windows.net',
    });
  }
  const endpoint = env.AZURE_STORAGE_ENDPOINT || `https://${account}.blob.core.windows.net`;
  if (!/^https?:\/\/[^/]/.test(endpoint)) {
    throw new LifeboatError('USAGE', `AZURE_STORAGE_ENDPOINT is not an http(s) URL: ${endpoint}`, {
      hint: 'for example https://ACCOUNT.blob.core.windows.net, or http://127.0.0.1:10000/devstoreaccount1 for azurite',
    });
  }
  return { account, key, endpoint };
}
