import { css } from 'lit';

export const linuxVmStyles = css`
  :host {
    display: block;
    position: relative;
    box-sizing: border-box;
    min-height: 10rem;
    height: 24rem;
    background: #101010;
    color: #e6e6e6;
    contain: content;
  }

  :host([hidden]) {
    display: none;
  }

  [part='terminal'] {
    position: absolute;
    inset: 0;
    padding: 4px;
    box-sizing: border-box;
  }

  [part='terminal'] .xterm {
    height: 100%;
  }
`;
