import { MediaError } from './errors';

/**
 * Parses an endpoint override such as `http://127.0.0.1:9001` (COS_ENDPOINT, TRTC_API_ENDPOINT):
 * scheme, host and port only. A bad value is not echoed: a mistyped one may carry credentials.
 */
export function parseEndpointOverride(value: string, name: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.username) {
    throw new MediaError('InvalidConfig', `${name} must look like http://host:port (scheme, host and port only)`);
  }
  return url;
}
