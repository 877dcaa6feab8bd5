/**
 * File names for recordings written to the user's folder: whatever the PBX or a zip entry calls them,
 * the file lands inside that folder under a name every file system accepts (no zip slip).
 */
import * as path from 'node:path';

const UNSAFE = /(^|[\\/])\.\.([\\/]|$)|^[\\/]|^[a-zA-Z]:/;

/**
 * A file name that cannot leave its folder and is safe on every file system: the last path segment,
 * control characters removed, anything but letters, digits and `._-+@=()` replaced by `_`, no leading
 * dot, at most 200 characters.
 */
export function safeFileName(name: string, fallback = 'recording'): string {
  const base = name.split(/[\\/]/).filter(Boolean).pop() ?? '';
  let s = base.normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').replace(/[^\w.\-+@=()]/g, '_').replace(/^[.\s]+/, '').replace(/[.\s]+$/, '').slice(0, 200);
  if (!s) s = fallback;
  if (/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i.test(s)) s = `_${s}`;
  return s;
}

/** Whether a name (a zip entry's, or a recording's in the index) tries to leave the folder it is written into. */
export function isUnsafeEntryName(name: string): boolean {
  return UNSAFE.test(name) || name.includes('\u0000');
}

/** `dir/file`, refusing anything that would not be directly inside `dir`. */
export function insideFolder(dir: string, file: string): string {
  const full = path.resolve(dir, file);
  if (path.dirname(full) !== path.resolve(dir)) throw new Error(`refusing to write outside ${dir}: ${file}`);
  return full;
}
