import { MediaFormatError } from '../../errors';
/**
 * AMF0, the encoding of RTMP commands (connect, play, _result, onStatus) and data messages
 * (onMetaData): just the types RTMP servers send. An AMF3 value or an unknown marker ends the
 * decode with an AmfError; the caller treats that as a protocol it does not speak.
 */

export type AmfValue = number | boolean | string | null | undefined | AmfObject | AmfValue[] | Date;
export interface AmfObject {
  [key: string]: AmfValue;
}

export class AmfError extends MediaFormatError {}

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const REFERENCE = 0x07;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;
const UNSUPPORTED = 0x0d;
const XML_DOCUMENT = 0x0f;
const TYPED_OBJECT = 0x10;
/** Nesting deeper than this is not a command anyone sends; refusing it bounds recursion. */
const MAX_DEPTH = 32;

export function encodeAmf0(values: AmfValue[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) writeValue(parts, value);
  return Buffer.concat(parts);
}

function writeValue(parts: Buffer[], value: AmfValue): void {
  if (value === null) parts.push(Buffer.from([NULL]));
  else if (value === undefined) parts.push(Buffer.from([UNDEFINED]));
  else if (typeof value === 'number') {
    const out = Buffer.alloc(9);
    out[0] = NUMBER;
    out.writeDoubleBE(value, 1);
    parts.push(out);
  } else if (typeof value === 'boolean') parts.push(Buffer.from([BOOLEAN, value ? 1 : 0]));
  else if (typeof value === 'string') {
    const text = Buffer.from(value, 'utf8');
    if (text.length > 0xffff) throw new AmfError('string too long for AMF0');
    parts.push(Buffer.from([STRING, text.length >> 8, text.length & 0xff]), text);
  } else if (Array.isArray(value)) {
    const head = Buffer.alloc(5);
    head[0] = STRICT_ARRAY;
    head.writeUInt32BE(value.length, 1);
    parts.push(head);
    for (const item of value) writeValue(parts, item);
  } else if (value instanceof Date) {
    const out = Buffer.alloc(11);
    out[0] = DATE;
    out.writeDoubleBE(value.getTime(), 1);
    parts.push(out);
  } else {
    parts.push(Buffer.from([OBJECT]));
    for (const [key, item] of Object.entries(value)) {
      const name = Buffer.from(key, 'utf8');
      parts.push(Buffer.from([name.length >> 8, name.length & 0xff]), name);
      writeValue(parts, item);
    }
    parts.push(Buffer.from([0, 0, OBJECT_END]));
  }
}

/** Every value in `bytes`, in order. */
export function decodeAmf0(bytes: Buffer): AmfValue[] {
  const reader = new AmfReader(bytes);
  const values: AmfValue[] = [];
  while (!reader.done) values.push(reader.value(0));
  return values;
}

class AmfReader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  private need(count: number): void {
    if (this.offset + count > this.bytes.length) throw new AmfError('AMF0 value ends early');
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.offset++]!;
  }

  private u16(): number {
    this.need(2);
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  private u32(): number {
    this.need(4);
    const value = this.bytes.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  private double(): number {
    this.need(8);
    const value = this.bytes.readDoubleBE(this.offset);
    this.offset += 8;
    return value;
  }

  private utf8(length: number): string {
    this.need(length);
    const text = this.bytes.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return text;
  }

  value(depth: number): AmfValue {
    if (depth > MAX_DEPTH) throw new AmfError('AMF0 nesting too deep');
    const marker = this.u8();
    switch (marker) {
      case NUMBER:
        return this.double();
      case BOOLEAN:
        return this.u8() !== 0;
      case STRING:
        return this.utf8(this.u16());
      case LONG_STRING:
      case XML_DOCUMENT:
        return this.utf8(this.u32());
      case OBJECT:
        return this.properties(depth);
      case TYPED_OBJECT:
        this.utf8(this.u16()); // class name
        return this.properties(depth);
      case ECMA_ARRAY:
        this.u32(); // a count hint; the properties end with an object-end marker
        return this.properties(depth);
      case STRICT_ARRAY: {
        const count = this.u32();
        const items: AmfValue[] = [];
        for (let i = 0; i < count; i++) items.push(this.value(depth + 1));
        return items;
      }
      case DATE: {
        const time = this.double();
        this.u16(); // time zone, unused
        return new Date(time);
      }
      case NULL:
      case UNSUPPORTED:
        return null;
      case UNDEFINED:
        return undefined;
      case REFERENCE:
        this.u16();
        return null;
      default:
        throw new AmfError(`AMF0 marker 0x${marker.toString(16)} is not supported`);
    }
  }

  private properties(depth: number): AmfObject {
    const object: AmfObject = {};
    for (;;) {
      const name = this.utf8(this.u16());
      if (name === '') {
        this.need(1);
        if (this.bytes[this.offset] === OBJECT_END) {
          this.offset++;
          return object;
        }
      }
      object[name] = this.value(depth + 1);
    }
  }
}
